"""Who signed a post: Order Desk's HMAC and its legacy variant, checked in constant time."""

from __future__ import annotations

import pytest

from ledger import signature
from ledger.errors import NotSigned
from tests.helpers import API_KEY, SAMPLES

SAMPLE_FILES = sorted(SAMPLES.glob("*.json"))


def test_sample_signatures_match_the_published_hashes() -> None:
    published = dict(
        reversed(line.split()) for line in (SAMPLES / "HASHES").read_text().splitlines() if line
    )
    for path in SAMPLE_FILES:
        assert signature.sign(API_KEY, path.read_bytes()) == published[path.name]


def test_signature_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every comparison of a claimed hash goes through hmac.compare_digest."""
    import hmac as hmac_module

    calls: list[tuple[str, str]] = []
    real = hmac_module.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signature.hmac, "compare_digest", spy)
    raw = b'{"id":"1","note":"50%25 off"}'
    with pytest.raises(NotSigned):
        signature.check_signature(raw, "a" * 64, API_KEY)
    assert len(calls) == 2  # the standard and the legacy variant, both constant-time
    assert (
        signature.check_signature(raw, signature.sign(API_KEY, raw), API_KEY) == signature.STANDARD
    )


def test_the_legacy_variant_is_the_hash_of_the_second_percent_decoding() -> None:
    raw = b'{"id":"1","note":"50%25 off"}'
    assert signature.check_signature(raw, signature.sign(API_KEY, b'{"id":"1","note":"50% off"}'),
                                     API_KEY) == signature.LEGACY  # fmt: skip
    with pytest.raises(NotSigned, match="missing X-ORDER-DESK-HASH"):
        signature.check_signature(raw, None, API_KEY)


@pytest.mark.parametrize(("claimed", "reason"), [(None, "missing"), ("  ", "missing"),
                                                 ("70999", "unknown store id")])  # fmt: skip
def test_a_store_without_a_configured_key_is_refused(claimed: str | None, reason: str) -> None:
    with pytest.raises(NotSigned, match=reason):
        signature.store_api_key({"70412": API_KEY}, claimed)
    assert signature.store_api_key({"70412": API_KEY}, " 70412 ") == ("70412", API_KEY)
