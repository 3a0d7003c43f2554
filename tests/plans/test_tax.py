"""VAT of a line: one rounding rule (plans.rating.tax), applied by the engine to every line."""

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plans.rating.engine import RatedAccount, rate_account
from plans.rating.tax import DEFAULT_VAT, VatTerms, credited_vat, vat_split
from tests.plans.test_rating import BOOK, app_input

D = Decimal
INCLUDED_6 = VatTerms(rate=D("0.06"), prices_include_vat=True)
EXCLUDED_6 = VatTerms(rate=D("0.06"), prices_include_vat=False)
INCLUDED_13 = VatTerms(rate=D("0.13"), prices_include_vat=True)
ZERO_RATE = VatTerms(rate=D("0"), prices_include_vat=True)

# (terms, price, net, vat, gross): each a line as the customer reads it, to the cent.
CASES = [
    (INCLUDED_6, "6000.00", "5660.38", "339.62", "6000.00"),  # 339.6226... down
    (INCLUDED_6, "2400.00", "2264.15", "135.85", "2400.00"),  # 135.8490... up
    (INCLUDED_6, "0.00", "0.00", "0.00", "0.00"),
    (INCLUDED_6, "0.01", "0.01", "0.00", "0.01"),
    (INCLUDED_6, "0.09", "0.08", "0.01", "0.09"),  # 0.005094... up
    (INCLUDED_6, "0.53", "0.50", "0.03", "0.53"),  # exactly 0.03
    (INCLUDED_6, "1.06", "1.00", "0.06", "1.06"),
    (INCLUDED_6, "4129.03", "3895.31", "233.72", "4129.03"),
    (INCLUDED_6, "999999999999.99", "943396226415.08", "56603773584.91", "999999999999.99"),
    (EXCLUDED_6, "100.00", "100.00", "6.00", "106.00"),
    (EXCLUDED_6, "0.08", "0.08", "0.00", "0.08"),  # 0.0048 down
    (EXCLUDED_6, "0.25", "0.25", "0.02", "0.27"),  # 0.015 half up
    (EXCLUDED_6, "4129.03", "4129.03", "247.74", "4376.77"),  # 247.7418 down
    (INCLUDED_13, "113.00", "100.00", "13.00", "113.00"),
    (INCLUDED_13, "10.00", "8.85", "1.15", "10.00"),  # 1.1504... down
    (ZERO_RATE, "123.45", "123.45", "0.00", "123.45"),
    (INCLUDED_6, "-100.00", "-94.34", "-5.66", "-100.00"),  # a negative line: symmetric
]


@pytest.mark.parametrize(("terms", "price", "net", "vat", "gross"), CASES)
def test_tax_rounding_cases(terms, price, net, vat, gross):
    split = vat_split(price=D(price), terms=terms)
    assert (split.net, split.vat, split.gross) == (D(net), D(vat), D(gross))
    assert split.net + split.vat == split.gross


def test_an_invoice_of_the_cases_sums_its_lines_to_the_cent():
    lines = [vat_split(price=D(price), terms=INCLUDED_6) for _t, price, *_ in CASES[:8]]
    net = sum((line.net for line in lines), D("0"))
    vat = sum((line.vat for line in lines), D("0"))
    gross = sum((line.gross for line in lines), D("0"))
    assert (net, vat, gross) == (D("11821.43"), D("709.29"), D("12530.72"))
    assert net + vat == gross


def test_a_rate_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="VAT rate"):
        VatTerms(rate=D("1"))
    with pytest.raises(ValueError, match="VAT rate"):
        VatTerms(rate=D("-0.01"))


cents = st.integers(min_value=0, max_value=10**13).map(lambda c: D(c) / 100)
rates = st.sampled_from([D("0"), D("0.03"), D("0.06"), D("0.09"), D("0.13"), D("0.0550")])


@given(prices=st.lists(cents, min_size=1, max_size=30), rate=rates, included=st.booleans())
def test_net_plus_vat_is_gross_per_line_and_totals_are_sums(prices, rate, included):
    terms = VatTerms(rate=rate, prices_include_vat=included)
    lines = [vat_split(price=price, terms=terms) for price in prices]
    for price, line in zip(prices, lines, strict=True):
        assert line.net + line.vat == line.gross
        assert line.vat == line.vat.quantize(D("0.01"))
        assert (line.gross if included else line.net) == price
        assert abs(line.vat - line.net * rate) <= D("0.01") * (1 + rate)


@given(
    gross=st.integers(min_value=1, max_value=10**9).map(lambda c: D(c) / 100),
    rate=rates,
    parts=st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=8),
)
def test_credit_notes_give_back_the_line_vat_to_the_cent(gross, rate, parts):
    """Credited in any number of notes, a line gives back exactly its VAT; each note's VAT is
    within a cent of the proportional share."""
    line = vat_split(price=gross, terms=VatTerms(rate=rate))
    # Split the gross into len(parts) credits in proportion to `parts`, last one takes the rest.
    weights = sum(parts)
    credits = [(gross * part / weights).quantize(D("0.01")) for part in parts[:-1]]
    credits = [c for c in credits if c > 0]
    credits.append(gross - sum(credits, D("0")))
    if credits[-1] <= 0:
        return
    given_back, credited = [], D("0")
    for credit in credits:
        vat = credited_vat(
            line_gross=line.gross, line_vat=line.vat, credited_before=credited, credited_now=credit
        )
        assert abs(vat - line.vat * credit / line.gross) <= D("0.01")
        given_back.append(vat)
        credited += credit
    assert sum(given_back, D("0")) == line.vat


def test_the_engine_splits_every_line_by_the_book_terms():
    app = app_input("premium", 8000, addons={"sensitive_words": 2})
    included: RatedAccount = rate_account(book=BOOK, applications=[app])
    assert BOOK.vat == DEFAULT_VAT
    assert included.total == D("8400.00")
    assert [(line.net_amount, line.vat_amount) for line in included.lines] == [
        (D("5660.38"), D("339.62")),
        (D("2264.15"), D("135.85")),
    ]
    assert (included.net_total, included.vat_total) == (D("7924.53"), D("475.47"))

    excluded = rate_account(book=dataclasses.replace(BOOK, vat=EXCLUDED_6), applications=[app])
    assert [(line.net_amount, line.vat_amount, line.amount) for line in excluded.lines] == [
        (D("6000.00"), D("360.00"), D("6360.00")),
        (D("2400.00"), D("144.00"), D("2544.00")),
    ]
    assert (excluded.net_total, excluded.vat_total, excluded.total) == (
        D("8400.00"),
        D("504.00"),
        D("8904.00"),
    )
