"""pydantic's ValidationError as one line: a rule's own words, or pydantic's for a type it refused."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from plumbing.validation_errors import one_line


class Sample(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    count: int
    name: str = "x"

    @field_validator("name")
    @classmethod
    def _lowercase(cls, name: str) -> str:
        if name != name.lower():
            raise ValueError(f"name must be lowercase,\ngot {name!r}")
        return name


def error_of(**data: object) -> ValidationError:
    with pytest.raises(ValidationError) as excinfo:
        Sample(**data)  # type: ignore[arg-type]
    return excinfo.value


def test_a_rules_message_is_given_as_it_was_worded_on_one_line() -> None:
    assert one_line(error_of(count=1, name="Big")) == "name must be lowercase, got 'Big'"


def test_a_type_pydantic_refused_names_the_field_and_the_value() -> None:
    assert one_line(error_of(count="3")) == "count: Input should be a valid integer, got '3'"
    assert one_line(error_of(count=1, colour="red")) == "colour: Extra inputs are not permitted, got 'red'"
    assert one_line(error_of()) == "count: Field required"


def test_of_several_problems_the_first_is_told() -> None:
    error = error_of(count="3", name="Big")
    assert len(error.errors()) == 2
    assert one_line(error) == "count: Input should be a valid integer, got '3'"
