"""The OpenAI client subclass that reuses built requests as templates."""

from __future__ import annotations

import json

import openai
import pytest

from curation.teachers.openai_teacher import templated_client_class

URL = "http://127.0.0.1:9/v1/chat/completions"


def options(**overrides):
    base = {"method": "post", "url": URL, "max_retries": 0, "timeout": 30, "headers": {}}
    return openai._models.FinalRequestOptions.construct(**{**base, **overrides})


def body(text: str) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()


@pytest.fixture
def clients():
    kwargs = {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-test", "max_retries": 0, "timeout": 30}
    plain, templated = openai.AsyncOpenAI(**kwargs), templated_client_class()(**kwargs)
    plain._platform = templated._platform = "test"
    return plain, templated


@pytest.mark.parametrize("text", ["first", "a longer second prompt, so the length changes", "ünïcode"])
def test_a_templated_request_equals_the_sdks_own(clients, text):
    plain, templated = clients
    templated._build_request(options(content=body("warm the template up")))
    expected = plain._build_request(options(content=body(text)))
    got = templated._build_request(options(content=body(text)))
    assert got.method == expected.method and got.url == expected.url
    assert got.headers.multi_items() == expected.headers.multi_items()
    assert got.read() == expected.read() == body(text)
    assert got.extensions == expected.extensions


def test_other_options_get_their_own_template(clients):
    _, templated = clients
    templated._build_request(options(content=body("x")))
    other = templated._build_request(options(content=body("x"), timeout=5, headers={"X-Extra": "1"}))
    assert other.headers["x-extra"] == "1" and other.headers["x-stainless-read-timeout"] == "5"
    assert other.extensions["timeout"]["read"] == 5


def test_a_json_body_goes_through_the_sdk(clients):
    plain, templated = clients
    expected = plain._build_request(options(json_data={"model": "m"}))
    got = templated._build_request(options(json_data={"model": "m"}))
    assert got.read() == expected.read()
    assert "_assay_request_templates" not in templated.__dict__
