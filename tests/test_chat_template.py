"""One chat-template helper for generation, judging and pruning: Qwen3-style templates are told not to think."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from helpers import judge, pruning, steering
from helpers.models import chat_prompt

PLAIN = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
# as Qwen3's template: an empty think block when thinking is switched off, else the model opens <think> itself
QWEN3_STYLE = PLAIN.replace("assistant\n{% endif %}", "assistant\n{% if enable_thinking is defined and "
                            "enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}")
NO_THINK = "<|im_start|>assistant\n<think>\n\n</think>\n\n"


class RecordingTokenizer(PreTrainedTokenizerFast):
    """A one-word tokenizer that records the keyword arguments of every chat-template call and every text batch."""

    def __init__(self, template: str) -> None:
        super().__init__(tokenizer_object=Tokenizer(WordLevel({"<unk>": 0, "<pad>": 1}, unk_token="<unk>")),
                         unk_token="<unk>", pad_token="<pad>")
        self.chat_template, self.template_kwargs, self.batches = template, [], []

    def apply_chat_template(self, conversation, **kwargs):
        self.template_kwargs.append(kwargs)
        return super().apply_chat_template(conversation, **kwargs)

    def __call__(self, text, **kwargs):
        if isinstance(text, list):
            self.batches.append(text)
        return super().__call__(text, **kwargs)


def test_a_template_that_knows_enable_thinking_gets_it_switched_off():
    tokenizer = RecordingTokenizer(QWEN3_STYLE)
    text = chat_prompt(tokenizer, "Is lying wrong?", system="Be brief.")
    assert tokenizer.template_kwargs[-1]["enable_thinking"] is False
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nIs lying wrong?<|im_end|>\n"
                    + NO_THINK)


def test_a_template_without_enable_thinking_is_rendered_as_it_always_was():
    tokenizer = RecordingTokenizer(PLAIN)
    text = chat_prompt(tokenizer, "Is lying wrong?")
    assert tokenizer.template_kwargs[-1] == {"add_generation_prompt": True, "tokenize": False}
    assert text == "<|im_start|>user\nIs lying wrong?<|im_end|>\n<|im_start|>assistant\n"


def test_no_chat_template_still_raises():
    with pytest.raises(ValueError, match="chat_template"):
        chat_prompt(RecordingTokenizer(None), "Is lying wrong?")


def test_generation_judging_and_pruning_all_switch_thinking_off():
    tokenizer = RecordingTokenizer(QWEN3_STYLE)
    model = SimpleNamespace(tokenizer=tokenizer, device=torch.device("cpu"))
    assert all(t.endswith(NO_THINK) for t in steering.chat_texts(model, ["a", "b"], system=steering.SYSTEM))
    assert pruning.question_prompt(tokenizer, "Capital of France?").endswith(NO_THINK)
    model.plain = lambda input_ids, attention_mask, logits_to_keep: SimpleNamespace(
        logits=torch.zeros(input_ids.shape[0], logits_to_keep, len(tokenizer)))
    judge.LocalJudge(model, "fake").answer_logprobs(["Safe?", "Kind?"], ["Yes", "No"])
    assert len(tokenizer.batches) == 1 and all(t.endswith(NO_THINK) for t in tokenizer.batches[0])
