"""Prices per million tokens, per model, as data (libs/prices.toml), overridable from the environment.

PRICE_TABLE_FILE (a TOML or JSON file) and then PRICE_TABLE_JSON (a JSON object) are merged over the
defaults, each of the shape model id -> {input, output, cache_read, cache_write}. A model found
nowhere is priced at zero and flagged (`known=False`), never guessed; a dated id finds its undated
alias and the other way round, and nothing else.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import msgspec

PRICES_FILE = "prices.toml"  # next to this module, shipped in the wheel

_Rate = Annotated[float, msgspec.Meta(ge=0.0)]


class ModelPrice(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """USD per million tokens."""

    input: _Rate
    output: _Rate
    cache_read: _Rate = 0.0
    cache_write: _Rate = 0.0


class Price(msgspec.Struct, frozen=True):
    usd: float
    known: bool


class PriceTableError(ValueError):
    """A price table (the defaults or an override) that is not model id -> prices."""


_SHAPE = "a table of model id -> {input, output, cache_read, cache_write} in USD per million tokens"


def parse_prices(raw: Any, source: str) -> dict[str, ModelPrice]:
    """Validate a decoded table, naming `source` and the model in any error."""
    if not isinstance(raw, dict):
        raise PriceTableError(f"{source}: expected {_SHAPE}, got {type(raw).__name__}")
    prices: dict[str, ModelPrice] = {}
    for model, rates in raw.items():
        try:
            price = msgspec.convert(rates, ModelPrice)
        except msgspec.ValidationError as e:
            raise PriceTableError(f"{source}: model {model!r}: {e} (expected {_SHAPE})") from None
        if not all(math.isfinite(v) for v in msgspec.structs.astuple(price)):
            raise PriceTableError(f"{source}: model {model!r}: prices must be finite numbers")
        prices[model] = price
    return prices


def _decode(text: str, kind: str, source: str) -> Any:
    try:
        return json.loads(text) if kind == "json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise PriceTableError(f"{source}: not valid {kind.upper()}: {e}") from None


def load_price_file(path: str | Path, source: str | None = None) -> dict[str, ModelPrice]:
    """A price table from a .toml or .json file."""
    path = Path(path)
    source = source or str(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("toml", "json"):
        raise PriceTableError(f"{source}: {path} must be a .toml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PriceTableError(f"{source}: cannot read {path}: {e.strerror or e}") from None
    return parse_prices(_decode(text, kind, source), source)


def _load_defaults() -> dict[str, ModelPrice]:
    text = resources.files(__package__).joinpath(PRICES_FILE).read_text(encoding="utf-8")
    return parse_prices(_decode(text, "toml", f"libs/{PRICES_FILE}"), f"libs/{PRICES_FILE}")


# The built-in table, from libs/prices.toml (sources and the date checked are in that file).
DEFAULT_PRICES: dict[str, ModelPrice] = _load_defaults()

# A snapshot date at the end of a model id: Anthropic -20251001, OpenAI -2024-08-06.
_DATE_SUFFIX = re.compile(r"-(?:20\d{6}|20\d{2}-\d{2}-\d{2})$")


def undated(model: str) -> str | None:
    """The alias of a dated model id (claude-haiku-4-5-20251001 -> claude-haiku-4-5), else None."""
    alias = _DATE_SUFFIX.sub("", model)
    return alias if alias != model else None


class PriceTable:
    def __init__(self, prices: dict[str, ModelPrice]) -> None:
        self.prices = prices
        # alias -> the dated ids listed for it, for a provider that answers with the alias only
        self._snapshots: dict[str, list[str]] = {}
        for model in prices:
            alias = undated(model)
            if alias is not None:
                self._snapshots.setdefault(alias, []).append(model)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PriceTable:
        """The defaults, then PRICE_TABLE_FILE, then PRICE_TABLE_JSON (later ones win per model).

        A malformed override raises PriceTableError naming the variable, so the service does not
        start with prices it cannot trust.
        """
        env = os.environ if environ is None else environ
        prices = dict(DEFAULT_PRICES)
        path = env.get("PRICE_TABLE_FILE")
        if path:
            prices.update(load_price_file(path, "PRICE_TABLE_FILE"))
        override = env.get("PRICE_TABLE_JSON")
        if override:
            prices.update(parse_prices(_decode(override, "json", "PRICE_TABLE_JSON"), "PRICE_TABLE_JSON"))
        return cls(prices)

    def lookup(self, model: str) -> ModelPrice | None:
        """The model's prices: listed as given, else under its undated alias (for a dated id), else
        under its one listed dated snapshot (for an alias); None if not found or ambiguous."""
        rates = self.prices.get(model)
        if rates is not None:
            return rates
        alias = undated(model)
        if alias is not None:
            return self.prices.get(alias)
        candidates = {self.prices[m] for m in self._snapshots.get(model, ())}
        return candidates.pop() if len(candidates) == 1 else None

    def price(self, model: str, usage: dict[str, int]) -> Price:
        rates = self.lookup(model)
        if rates is None:
            return Price(0.0, False)
        usd = (
            usage.get("input_tokens", 0) * rates.input
            + usage.get("output_tokens", 0) * rates.output
            + usage.get("cache_read_tokens", 0) * rates.cache_read
            + usage.get("cache_write_tokens", 0) * rates.cache_write
        ) / 1_000_000
        return Price(round(usd, 8), True)


def provider_of(model: str) -> str:
    """Which provider's API a model is called through: Anthropic's models are `claude-*`; every
    other model goes through the OpenAI API (OpenAI's own, or an OpenAI-compatible server's)."""
    return "anthropic" if model.startswith("claude") else "openai"


def models_by_provider(table: PriceTable) -> dict[str, list[str]]:
    """The models the table prices, by provider, sorted."""
    found: dict[str, list[str]] = {}
    for model in sorted(table.prices):
        found.setdefault(provider_of(model), []).append(model)
    return found
