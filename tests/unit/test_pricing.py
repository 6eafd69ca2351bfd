"""The price table: per-million-token rates per model, as data, overridable from the environment."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from libs.pricing import DEFAULT_PRICES, ModelPrice, Price, PriceTable, PriceTableError, models_by_provider

SONNET = "claude-sonnet-4-20250514"
OVERRIDE_VARS = ("PRICE_TABLE_JSON", "PRICE_TABLE_FILE")


@pytest.fixture(autouse=True)
def no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OVERRIDE_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def table() -> PriceTable:
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


# --- the table as data ------------------------------------------------------------------------


def test_the_defaults_come_from_the_data_file_next_to_the_module() -> None:
    data = Path(__file__).parents[2] / "libs" / "prices.toml"
    text = data.read_text()

    assert re.search(r"^# Checked \d{4}-\d{2}-\d{2}\.", text, re.MULTILINE)
    assert "platform.claude.com" in text and "developers.openai.com" in text  # sources named
    assert PriceTable.from_env().prices == DEFAULT_PRICES
    assert DEFAULT_PRICES == PriceTable.from_env({"PRICE_TABLE_FILE": str(data)}).prices  # same shape


def test_the_data_file_ships_with_the_package(tmp_path: Path) -> None:
    # imported from another directory, as an installed wheel would be
    code = "import libs.pricing as p; print(p.DEFAULT_PRICES['claude-sonnet-4-20250514'].input)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False)

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3.0"


def test_the_current_models_of_both_providers_are_priced(table: PriceTable) -> None:
    for model in (
        "claude-opus-4-7",
        "claude-sonnet-4-6",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5-20250929",
        "claude-haiku-4-5",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5.4",
        "gpt-5.4-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4o",
        "gpt-4o-mini",
        "o3",
        "o4-mini",
    ):
        assert table.price(model, {"input_tokens": 1}).known, model


def test_sonnet_4_keeps_its_price() -> None:
    assert DEFAULT_PRICES[SONNET] == ModelPrice(3.0, 15.0, 0.30, 3.75)


@pytest.mark.parametrize("model", sorted(DEFAULT_PRICES))
def test_every_entry_has_non_negative_prices(model: str) -> None:
    p = DEFAULT_PRICES[model]

    assert min(p.input, p.output, p.cache_read, p.cache_write) >= 0
    assert p.input > 0 and p.output > 0


def _provider(model: str) -> str:
    if model.startswith("claude-"):
        return "anthropic"
    if re.match(r"(gpt-|o\d)", model):
        return "openai"
    return "other"


@pytest.mark.parametrize("model", sorted(DEFAULT_PRICES))
def test_a_cache_read_is_cheaper_than_input(model: str) -> None:
    p = DEFAULT_PRICES[model]

    assert _provider(model) in ("anthropic", "openai")  # the built-in table prices these two only
    if p.cache_read:
        assert p.cache_read < p.input


@pytest.mark.parametrize("model", sorted(m for m in DEFAULT_PRICES if _provider(m) == "anthropic"))
def test_an_anthropic_cache_write_is_the_5_minute_write(model: str) -> None:
    p = DEFAULT_PRICES[model]

    assert p.cache_write == pytest.approx(1.25 * p.input)


@pytest.mark.parametrize("model", sorted(m for m in DEFAULT_PRICES if _provider(m) == "openai"))
def test_openai_charges_no_cache_write(model: str) -> None:
    assert DEFAULT_PRICES[model].cache_write == 0.0


@pytest.mark.parametrize(
    ("dated", "alias"),
    [
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
    ],
)
def test_an_anthropic_snapshot_and_its_alias_cost_the_same(dated: str, alias: str) -> None:
    assert DEFAULT_PRICES[dated] == DEFAULT_PRICES[alias]


# --- model ids: dated snapshots and their aliases ----------------------------------------------


def test_a_dated_id_finds_its_undated_alias() -> None:
    table = PriceTable({"claude-haiku-4-5": ModelPrice(1.0, 5.0, 0.10, 1.25)})

    price = table.price("claude-haiku-4-5-20251001", {"input_tokens": 1_000_000})

    assert price == Price(usd=pytest.approx(1.0), known=True)


def test_an_alias_finds_its_one_dated_snapshot() -> None:
    table = PriceTable({"claude-haiku-4-5-20251001": ModelPrice(1.0, 5.0, 0.10, 1.25)})

    assert table.price("claude-haiku-4-5", {"output_tokens": 1_000_000}) == Price(usd=pytest.approx(5.0), known=True)


def test_openai_dated_snapshots_find_their_alias(table: PriceTable) -> None:
    assert table.lookup("gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
    assert table.lookup("gpt-5.4-mini-2026-03-17") == DEFAULT_PRICES["gpt-5.4-mini"]
    assert table.lookup("o3-2025-04-16") == DEFAULT_PRICES["o3"]


def test_a_snapshot_listed_on_its_own_keeps_its_own_price(table: PriceTable) -> None:
    assert table.lookup("gpt-4o-2024-05-13") == ModelPrice(5.0, 15.0)
    assert table.lookup("gpt-4o") == ModelPrice(2.5, 10.0, 1.25)


def test_an_alias_with_differently_priced_snapshots_stays_unknown() -> None:
    table = PriceTable({"gpt-4o-2024-05-13": ModelPrice(5.0, 15.0), "gpt-4o-2024-08-06": ModelPrice(2.5, 10.0, 1.25)})

    assert table.price("gpt-4o", {"input_tokens": 1000}) == Price(0.0, False)


@pytest.mark.parametrize(
    "model",
    [
        "claude-haiku-4",  # another version of the family
        "claude-haiku-4-6",
        "claude-haiku-4-5-fast",  # a variant, not a snapshot
        "claude-haiku-4-5-2025",  # not a date
        "claude-sonnet-4-5-20250929",  # another family
        "anthropic/claude-haiku-4-5",
        "CLAUDE-HAIKU-4-5",
    ],
)
def test_no_guess_across_models_or_families(model: str) -> None:
    table = PriceTable({"claude-haiku-4-5": ModelPrice(1.0, 5.0, 0.10, 1.25)})

    assert table.price(model, {"input_tokens": 1000}) == Price(0.0, False)


def test_an_unknown_dated_model_stays_unknown(table: PriceTable) -> None:
    assert table.price("my-local-llama-20250101", {"input_tokens": 1000}) == Price(0.0, False)


# --- overrides --------------------------------------------------------------------------------


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


def test_a_toml_price_file_is_merged_over_the_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '"my-local-llama" = { input = 1, output = 2 }\n'
        f'"{SONNET}" = {{ input = 10.0, output = 20.0, cache_read = 1.0, cache_write = 5.0 }}\n'
    )
    monkeypatch.setenv("PRICE_TABLE_FILE", str(path))

    table = PriceTable.from_env()

    assert table.prices["my-local-llama"] == ModelPrice(1.0, 2.0)
    assert table.prices[SONNET] == ModelPrice(10.0, 20.0, 1.0, 5.0)
    assert table.prices["gpt-5"] == DEFAULT_PRICES["gpt-5"]  # the rest stays


def test_a_json_price_file_works_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"my-local-llama": {"input": 0.5, "output": 1.5}}))
    monkeypatch.setenv("PRICE_TABLE_FILE", str(path))

    assert PriceTable.from_env().price("my-local-llama", {"output_tokens": 2_000_000}).usd == pytest.approx(3.0)


def test_the_json_variable_wins_over_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('"my-local-llama" = { input = 1, output = 2 }\n"other" = { input = 7, output = 7 }\n')
    monkeypatch.setenv("PRICE_TABLE_FILE", str(path))
    monkeypatch.setenv("PRICE_TABLE_JSON", json.dumps({"my-local-llama": {"input": 3.0, "output": 4.0}}))

    table = PriceTable.from_env()

    assert table.prices["my-local-llama"] == ModelPrice(3.0, 4.0)
    assert table.prices["other"] == ModelPrice(7.0, 7.0)


def test_empty_variables_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OVERRIDE_VARS:
        monkeypatch.setenv(name, "")

    assert PriceTable.from_env().prices == DEFAULT_PRICES


def test_env_override_that_is_not_a_price_table_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRICE_TABLE_JSON", json.dumps({"my-model": {"input": "cheap"}}))

    with pytest.raises(ValueError):
        PriceTable.from_env()


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "got list"),
        (json.dumps({"my-model": {"input": "cheap", "output": 1}}), "'my-model': Expected `float`, got `str`"),
        (json.dumps({"my-model": {"input": -1, "output": 1}}), "'my-model': Expected `float` >= 0.0"),
        (json.dumps({"my-model": {"output": 1}}), "'my-model': Object missing required field `input`"),
        (json.dumps({"my-model": {"input": 1, "output": 1, "cache_reed": 0.1}}), "unknown field `cache_reed`"),
        (json.dumps({"my-model": 3}), "'my-model': Expected `object`, got `int`"),
        ('{"my-model": {"input": NaN, "output": 1}}', "'my-model'"),
        ('{"my-model": {"input": Infinity, "output": 1}}', "'my-model': prices must be finite"),
    ],
)
def test_a_bad_json_override_names_the_variable_and_the_problem(
    monkeypatch: pytest.MonkeyPatch, value: str, detail: str
) -> None:
    monkeypatch.setenv("PRICE_TABLE_JSON", value)

    with pytest.raises(PriceTableError) as raised:
        PriceTable.from_env()

    message = str(raised.value)
    assert message.startswith("PRICE_TABLE_JSON: ")
    assert detail in message
    shown = "".join(traceback.format_exception(raised.value))  # what start-up prints
    assert "During handling" not in shown and "ValidationError" not in shown and "JSONDecodeError" not in shown


@pytest.mark.parametrize(
    ("name", "content", "detail"),
    [
        ("prices.toml", '"m" = { input = "cheap", output = 1 }\n', "'m': Expected `float`, got `str`"),
        ("prices.toml", "m = = 1\n", "not valid TOML"),
        ("prices.json", '{"m": ', "not valid JSON"),
        ("prices.yaml", "m: 1\n", "must be a .toml or .json file"),
    ],
)
def test_a_bad_price_file_names_the_variable_and_the_problem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, content: str, detail: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    monkeypatch.setenv("PRICE_TABLE_FILE", str(path))

    with pytest.raises(PriceTableError, match=r"^PRICE_TABLE_FILE: ") as raised:
        PriceTable.from_env()

    assert detail in str(raised.value)


def test_a_missing_price_file_names_the_variable_and_the_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    monkeypatch.setenv("PRICE_TABLE_FILE", str(path))

    with pytest.raises(PriceTableError, match=r"^PRICE_TABLE_FILE: cannot read .*nowhere\.toml"):
        PriceTable.from_env()


def test_the_models_a_table_prices_are_listed_by_the_provider_they_are_called_through() -> None:
    table = PriceTable({**DEFAULT_PRICES, "my-local-llama": ModelPrice(input=0.2, output=0.6)})

    models = models_by_provider(table)

    assert set(models) == {"anthropic", "openai"}
    assert "claude-sonnet-4-6" in models["anthropic"] and "gpt-5.4" in models["openai"]
    # Anything not Anthropic's goes through the OpenAI API (OpenAI's own, or a compatible server).
    assert "my-local-llama" in models["openai"]
    assert all(m.startswith("claude") for m in models["anthropic"])
    assert models["openai"] == sorted(models["openai"])
    assert sum(map(len, models.values())) == len(table.prices)
