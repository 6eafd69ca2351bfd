"""`just contracts`: writes the rendered documents to contracts/schemas, and drops the files
no contract renders any more."""

from __future__ import annotations

import sys

from exports.documents import SCHEMAS_DIR, render


def main() -> None:
    SCHEMAS_DIR.mkdir(exist_ok=True)
    rendered = render()
    for stale in SCHEMAS_DIR.glob("*.json"):
        if stale.name not in rendered:
            stale.unlink()
    for name, text in rendered.items():
        (SCHEMAS_DIR / name).write_text(text)
    print(f"wrote {len(rendered)} files to {SCHEMAS_DIR}", file=sys.stderr)


if __name__ == "__main__":
    main()
