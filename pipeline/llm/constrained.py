"""Constrained decoding of the answer for the local model, one token at a time with a KV cache.

After `{"codes": [` the model may only emit a codebook id in quotes (or `]` to stop): at each step
the logits are restricted to the tokens that continue some allowed item, so a tiny model cannot
invent codes or break the JSON. A chosen code's confidence is the probability of its item under
that restricted distribution (a real probability, not a number the model writes). Then
`"rationale": "` is forced and the model writes free text up to the closing quote. The answer is
assembled with json.dumps, so it is always valid JSON.
"""

from __future__ import annotations

import json

import torch


def _items(tokenizer, code_ids: list[str], first: bool) -> dict[str, list[int]]:
    sep = "" if first else ", "
    items = {code: tokenizer.encode(f'{sep}"{code}"', add_special_tokens=False) for code in code_ids}
    items["]"] = tokenizer.encode("]", add_special_tokens=False)
    return items


class Decoder:
    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.tokens = 0

    def feed(self, ids: list[int] | torch.Tensor, cache) -> tuple[torch.Tensor, object]:
        ids = torch.as_tensor(ids, dtype=torch.long).reshape(1, -1)
        out = self.model(input_ids=ids, cache=cache, use_cache=True)
        return out.logits[0, -1].float(), out.cache

    def choose(self, logits: torch.Tensor, cache, items: dict[str, list[int]]) -> tuple[str, float, torch.Tensor, object]:
        """Greedy walk down the token trie of `items`; returns the item, its probability, state."""
        alive = dict(items)
        position, prob = 0, 1.0
        while True:
            allowed = sorted({seq[position] for seq in alive.values()})
            probs = torch.softmax(logits[allowed], dim=0)
            best = int(torch.argmax(probs))
            token = allowed[best]
            prob *= float(probs[best])
            alive = {k: s for k, s in alive.items() if s[position] == token}
            logits, cache = self.feed([token], cache)
            self.tokens += 1
            position += 1
            done = [k for k, s in alive.items() if len(s) == position]
            if done:
                return done[0], prob, logits, cache

    def rationale(self, logits: torch.Tensor, cache, max_tokens: int) -> str:
        pieces: list[int] = []
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        eos = {self.tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])}
        for _ in range(max_tokens):
            token = int(torch.argmax(logits))
            if token in eos:
                break
            pieces.append(token)
            if '"' in self.tokenizer.decode([token]):
                break
            logits, cache = self.feed([token], cache)
            self.tokens += 1
        text = self.tokenizer.decode(pieces, skip_special_tokens=True)
        return " ".join(text.split('"')[0].split())


def constrained_answer(model, tokenizer, ids: torch.Tensor, cache, code_ids: list[str], max_codes: int,
                       max_tokens: int) -> tuple[str, int]:
    """The JSON answer for a prompt ending in `{"codes": [`; returns (text, tokens generated)."""
    decoder = Decoder(model, tokenizer)
    logits, cache = decoder.feed(ids, cache)
    chosen: dict[str, float] = {}
    while len(chosen) < max_codes:
        remaining = [c for c in code_ids if c not in chosen]
        if not remaining:
            break
        item, prob, logits, cache = decoder.choose(logits, cache, _items(tokenizer, remaining, not chosen))
        if item == "]":
            break
        chosen[item] = round(prob, 4)
    tail = ('' if len(chosen) < max_codes and len(chosen) < len(code_ids) else "]") + ', "rationale": "'
    logits, cache = decoder.feed(tokenizer.encode(tail, add_special_tokens=False), cache)
    rationale = decoder.rationale(logits, cache, max(8, max_tokens - decoder.tokens))
    ordered = [c for c in code_ids if c in chosen]
    answer = {"codes": ordered, "confidence": {c: chosen[c] for c in ordered},
              "rationale": rationale or "no reason given"}
    return json.dumps(answer, ensure_ascii=False), decoder.tokens
