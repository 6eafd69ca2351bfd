"""Prices per million tokens, per model, as data; overridable with PRICE_TABLE_JSON.

An unknown model is priced at zero and flagged (`known=False`), never guessed.
"""

from __future__ import annotations

import json
import os

import msgspec


class ModelPrice(msgspec.Struct, frozen=True):
    input: float
    output: float
    cache_read: float = 0.0
    cache_write: float = 0.0


class Price(msgspec.Struct, frozen=True):
    usd: float
    known: bool


# USD per million tokens, from the providers' published price lists.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-opus-4-1-20250805": ModelPrice(15.0, 75.0, 1.50, 18.75),
    "claude-opus-4-20250514": ModelPrice(15.0, 75.0, 1.50, 18.75),
    "claude-sonnet-4-5-20250929": ModelPrice(3.0, 15.0, 0.30, 3.75),
    "claude-sonnet-4-20250514": ModelPrice(3.0, 15.0, 0.30, 3.75),
    "claude-3-7-sonnet-20250219": ModelPrice(3.0, 15.0, 0.30, 3.75),
    "claude-haiku-4-5-20251001": ModelPrice(1.0, 5.0, 0.10, 1.25),
    "claude-3-5-haiku-20241022": ModelPrice(0.80, 4.0, 0.08, 1.0),
    "gpt-5": ModelPrice(1.25, 10.0, 0.125),
    "gpt-5-mini": ModelPrice(0.25, 2.0, 0.025),
    "gpt-4.1": ModelPrice(2.0, 8.0, 0.50),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60, 0.10),
    "gpt-4o": ModelPrice(2.50, 10.0, 1.25),
    "gpt-4o-mini": ModelPrice(0.15, 0.60, 0.075),
    "o3": ModelPrice(2.0, 8.0, 0.50),
    "o4-mini": ModelPrice(1.10, 4.40, 0.275),
}


class PriceTable:
    def __init__(self, prices: dict[str, ModelPrice]) -> None:
        self.prices = prices

    @classmethod
    def from_env(cls) -> PriceTable:
        prices = dict(DEFAULT_PRICES)
        override = os.environ.get("PRICE_TABLE_JSON")
        if override:
            prices.update(msgspec.convert(json.loads(override), dict[str, ModelPrice]))
        return cls(prices)

    def price(self, model: str, usage: dict[str, int]) -> Price:
        rates = self.prices.get(model)
        if rates is None:
            return Price(0.0, False)
        usd = (
            usage.get("input_tokens", 0) * rates.input
            + usage.get("output_tokens", 0) * rates.output
            + usage.get("cache_read_tokens", 0) * rates.cache_read
            + usage.get("cache_write_tokens", 0) * rates.cache_write
        ) / 1_000_000
        return Price(round(usd, 8), True)
