"""The site file's TrueNAS rules agree with the fake TrueNAS's (both follow the same
facts, infra/site.py and fakes/truenas/models/): a cron field the site file accepts is
one TrueNAS takes and the other way round; a dataset name the site file accepts (it
is stricter: no spaces) is one TrueNAS takes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fakes.truenas.models.cron import FIELDS, parse_field
from fakes.truenas.models.datasets import name_problem
from infra.site import cron_problem, dataset_problem

CRON_TEXT = st.text(alphabet="0123456789*/,- monfriSATjandec", max_size=9)


@given(field=st.sampled_from(sorted(FIELDS)), text=CRON_TEXT)
def test_cron_fields_agree(field: str, text: str) -> None:
    try:
        parse_field(field, text)
        truenas_takes = True
    except ValueError:
        truenas_takes = False
    assert (cron_problem(field, text) is None) == truenas_takes, (field, text)


@given(st.text(alphabet="ab1_.:-/ @.", max_size=12))
def test_dataset_names_the_site_file_takes_truenas_takes(name: str) -> None:
    if dataset_problem(name) is None:
        assert name_problem(f"tank/{name}") is None, name
