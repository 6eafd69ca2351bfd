"""The price table: per-million-token rates per model, overridable from the environment."""

from __future__ import annotations

import json

import pytest

from libs.pricing import DEFAULT_PRICES, ModelPrice, Price, PriceTable

SONNET = "claude-sonnet-4-20250514"


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> PriceTable:
    monkeypatch.delenv("PRICE_TABLE_JSON", raising=False)
    return PriceTable.from_env()


def test_spec_example(table: PriceTable) -> None:
    price = table.price(SONNET, {"input_tokens": 2340, "output_tokens": 890})

    assert price.known is True
    assert price.usd == pytest.approx(0.0204, abs=0.0001)
    assert price.usd == pytest.approx(0.02037)  # 2340 * $3/M + 890 * $15/M


def test_cache_reads_and_writes_are_priced(table: PriceTable) -> None:
    price = table.price(SONNET, {"cache_read_tokens": 1_000_000, "cache_write_tokens": 1_000_000})

    assert price == Price(usd=pytest.approx(0.30 + 3.75), known=True)


def test_every_kind_of_token_adds_up(table: PriceTable) -> None:
    usage = {"input_tokens": 1000, "output_tokens": 2000, "cache_read_tokens": 3000, "cache_write_tokens": 4000}

    price = table.price("claude-haiku-4-5-20251001", usage)

    assert price.usd == pytest.approx((1000 * 1.0 + 2000 * 5.0 + 3000 * 0.10 + 4000 * 1.25) / 1_000_000)


def test_no_usage_costs_nothing(table: PriceTable) -> None:
    assert table.price(SONNET, {}) == Price(0.0, True)


def test_unknown_model_is_priced_zero_and_flagged(table: PriceTable) -> None:
    price = table.price("my-local-llama", {"input_tokens": 5000, "output_tokens": 5000})

    assert price.usd == 0.0
    assert price.known is False


def test_env_override_adds_a_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRICE_TABLE_JSON", json.dumps({"my-local-llama": {"input": 1.0, "output": 2.0}}))

    table = PriceTable.from_env()
    price = table.price("my-local-llama", {"input_tokens": 1_000_000, "output_tokens": 500_000})

    assert price == Price(usd=pytest.approx(2.0), known=True)
    assert table.price(SONNET, {"input_tokens": 1_000_000}).usd == pytest.approx(3.0)  # defaults remain


def test_env_override_replaces_a_model(monkeypatch: pytest.MonkeyPatch) -> None:
    override = {SONNET: {"input": 10.0, "output": 20.0, "cache_read": 1.0, "cache_write": 5.0}}
    monkeypatch.setenv("PRICE_TABLE_JSON", json.dumps(override))

    price = PriceTable.from_env().price(SONNET, {"input_tokens": 1_000_000, "cache_write_tokens": 1_000_000})

    assert price.usd == pytest.approx(15.0)
    assert DEFAULT_PRICES[SONNET] == ModelPrice(3.0, 15.0, 0.30, 3.75)  # the defaults are not mutated


def test_env_override_that_is_not_a_price_table_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRICE_TABLE_JSON", json.dumps({"my-model": {"input": "cheap"}}))

    with pytest.raises(ValueError):
        PriceTable.from_env()
