"""The account file: who we are, where, with which secret, and never showing that secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from matrix_bot_tester.account import Account, load_account, parse_account
from matrix_bot_tester.errors import InputError

# The original tool's files, byte for byte (also in /work/shared/seed/original-test-data).
SEED = Path(__file__).parent.parent / "data" / "original"
SECRET = "Zq8-not-in-any-output-7Wm"
BASE = "user: '@alice:example.org'\nhomeserver_url: https://matrix.example.org\n"


def load_error(tmp_path: Path, text: str) -> tuple[InputError, Path]:
    path = tmp_path / "account.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_account(path)
    assert caught.value.exit_code == 2
    return caught.value, path


def url_error(tmp_path: Path, url: str) -> tuple[InputError, Path]:
    """The error of an account file whose homeserver_url (line 3, column 17) is ``url``."""
    return load_error(tmp_path, f"user: '@a:x.org'\npassword: {SECRET}\nhomeserver_url: '{url}'\n")


def assert_secret_absent(*texts: object) -> None:
    for text in texts:
        assert SECRET not in str(text)
        assert SECRET[:8] not in str(text)


# ---------------------------------------------------------------- loading


def test_seed_bot_account_loads() -> None:
    account = load_account(SEED / "bot-config.yaml")
    assert account.user == "@bot:synapse-test.localhost"
    assert account.homeserver_url == "http://localhost:8008"
    assert account.password is not None
    assert account.password.get_secret_value() == "test"
    assert account.access_token is None
    assert account.user_to_test is None


def test_seed_client_account_names_the_bot_to_test() -> None:
    account = load_account(SEED / "client-config.yaml")
    assert account.user == "@mock_client:synapse-test.localhost"
    assert account.user_to_test == "@bot:synapse-test.localhost"


def test_server_name_is_the_user_ids_domain() -> None:
    account = parse_account(BASE + "password: x\n")
    assert account.server_name == "example.org"


def test_trailing_slash_of_the_url_is_dropped() -> None:
    account = parse_account(
        "user: '@a:example.org'\npassword: x\nhomeserver_url: http://localhost:8008/\n"
    )
    assert account.homeserver_url == "http://localhost:8008"


def test_access_token_instead_of_password() -> None:
    account = parse_account(BASE + f"access_token: {SECRET}\ndevice_id: ABCDEF\n")
    assert account.password is None
    assert account.access_token is not None
    assert account.access_token.get_secret_value() == SECRET
    assert account.device_id == "ABCDEF"


def test_env_variable_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBT_TEST_PASSWORD", SECRET)
    account = parse_account(BASE + "password: ${MBT_TEST_PASSWORD}\n")
    assert account.password is not None
    assert account.password.get_secret_value() == SECRET


def test_env_variable_is_expanded_inside_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBT_TEST_HOST", "matrix.example.org")
    account = parse_account(
        "user: '@a:example.org'\npassword: x\nhomeserver_url: https://${MBT_TEST_HOST}:8448\n"
    )
    assert account.homeserver_url == "https://matrix.example.org:8448"


def test_missing_env_variable_names_it_and_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MBT_TEST_UNSET", raising=False)
    error, path = load_error(tmp_path, BASE + "password: ${MBT_TEST_UNSET}\n")
    assert str(error).startswith(f"{path}:3:11: environment variable MBT_TEST_UNSET is not set")
    assert error.hint == "export MBT_TEST_UNSET=... before running"


# ----------------------------------------------------------------- errors


def test_no_secret_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, BASE)
    assert str(error).startswith(f"{path}:1:1: ")
    assert "the account needs 'password' or 'access_token'" in str(error)


def test_bad_user_id_is_an_error_on_its_line(tmp_path: Path) -> None:
    error, path = load_error(
        tmp_path, f"homeserver_url: http://x.org\nuser: alice\npassword: {SECRET}\n"
    )
    assert str(error).startswith(f"{path}:2:7: user: not a full Matrix user ID")
    assert error.hint == "write it as '@name:server.example'"
    # Regression: the message showed a literal '{value!r}' placeholder.
    assert "{" not in str(error)


def test_bad_user_to_test_is_an_error_on_its_line(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, BASE + "password: x\nuser_to_test: bot\n")
    assert str(error).startswith(f"{path}:4:15: user_to_test: not a full Matrix user ID")


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:99999",
        "http://localhost:0",
        "http://localhost:abc",
        "http://localhost:-1",
        "http://:8008",
    ],
)
def test_a_homeserver_url_without_a_host_or_with_no_real_port_is_an_input_error(
    tmp_path: Path, url: str
) -> None:
    error, path = url_error(tmp_path, url)
    assert str(error).startswith(
        f"{path}:3:17: homeserver_url: needs a host name and, if any, a port number from 1"
    )


@pytest.mark.parametrize(
    "url", ["http://x.org/?access_token=TOKEN42", "http://x.org/#TOKEN42", "http://x.org?"]
)
def test_a_homeserver_url_with_a_query_is_refused_without_echoing_it(
    tmp_path: Path, url: str
) -> None:
    error, path = url_error(tmp_path, url)
    assert str(error).startswith(f"{path}:3:17: homeserver_url: must not have a query")
    assert "TOKEN42" not in error.one_line()


@pytest.mark.parametrize("url", ["localhost:8008", "ftp://x.org", "http://"])
def test_bad_homeserver_url_is_an_error_on_its_line(tmp_path: Path, url: str) -> None:
    error, path = url_error(tmp_path, url)
    assert str(error).startswith(f"{path}:3:17: homeserver_url: must be an http:// or https://")


@pytest.mark.parametrize("netloc", ["user:SECRETINURL@localhost:8008", "SECRETINURL@x.org"])
def test_credentials_in_the_url_are_refused_without_being_shown(
    tmp_path: Path, netloc: str
) -> None:
    error, path = url_error(tmp_path, f"http://{netloc}")
    assert str(error).startswith(f"{path}:3:17: homeserver_url: must not hold a user name")
    assert "SECRETINURL" not in error.one_line()


def test_missing_user_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "homeserver_url: http://x.org\npassword: x\n")
    assert str(error).startswith(f"{path}:1:1: missing required key 'user'")


def test_unknown_key_points_at_it(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, BASE + f"pasword: {SECRET}\n")
    assert str(error).startswith(f"{path}:3:1: unknown key 'pasword'")


def test_account_file_that_is_a_list_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "- user: '@a:x.org'\n")
    assert str(error).startswith(f"{path}:1:1: an account file must be a mapping")


def test_empty_account_file_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "")
    assert str(error).startswith(f"{path}: an account file must be a mapping")


def test_missing_account_file_says_not_found(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_account(tmp_path / "nope.yaml")
    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}: account file not found"
    assert caught.value.exit_code == 2


# ------------------------------------------------------- secrets stay secret


def test_repr_and_str_of_an_account_hide_the_password() -> None:
    account = parse_account(BASE + f"password: {SECRET}\n")
    assert isinstance(account, Account)
    assert_secret_absent(repr(account), str(account), account.password)


def test_repr_of_an_account_hides_the_access_token() -> None:
    account = parse_account(BASE + f"access_token: {SECRET}\n")
    assert_secret_absent(repr(account), str(account), account.access_token)


def test_repr_hides_a_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBT_TEST_PASSWORD", SECRET)
    account = parse_account(BASE + "password: ${MBT_TEST_PASSWORD}\n")
    assert_secret_absent(repr(account))


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(BASE + f"password: [{SECRET}]\n", id="password-list"),
        pytest.param(BASE + f"password: {{x: {SECRET}}}\n", id="password-mapping"),
        pytest.param(BASE + f"password: {SECRET}\npassword: {SECRET}\n", id="duplicate"),
        pytest.param(BASE + f"password: {SECRET}\nextra: {SECRET}\n", id="unknown-key"),
        pytest.param(BASE + f"password: {SECRET}: x\n", id="yaml-error-on-its-line"),
        pytest.param(BASE + f'password: "{SECRET}\n', id="unclosed-quote"),
        pytest.param(BASE + f"password: !{SECRET}\n", id="starts-with-bang"),
        pytest.param(BASE + f"password: *{SECRET}\n", id="starts-with-star"),
        pytest.param(
            f"user: alice\nhomeserver_url: x\npassword: {SECRET}\n", id="other-fields-wrong"
        ),
        pytest.param(BASE + f"access_token: [{SECRET}]\n", id="token-list"),
    ],
)
def test_errors_never_show_the_secret(tmp_path: Path, broken: str) -> None:
    error, _ = load_error(tmp_path, broken)
    assert_secret_absent(str(error), error.one_line(), repr(error), error.hint)


def test_unquoted_password_starting_with_bang_asks_for_quotes(tmp_path: Path) -> None:
    # Regression: YAML's message quoted the tag, that is, the password itself.
    error, path = load_error(tmp_path, BASE + f"password: !{SECRET}\n")
    assert str(error).startswith(f"{path}:3:11: invalid YAML")
    assert error.hint == "put the value in quotes"


def test_user_id_from_the_environment_is_not_echoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A mixed-up variable could put a password where the user ID goes.
    monkeypatch.setenv("MBT_TEST_USER", SECRET)
    error, _ = load_error(
        tmp_path, "user: ${MBT_TEST_USER}\nhomeserver_url: http://x.org\npassword: x\n"
    )
    assert_secret_absent(str(error))


def test_a_script_given_as_the_account_file_says_so(tmp_path: Path) -> None:
    # Regression: '--account ping.yaml' said only "unknown key 'messages'".
    error, path = load_error(tmp_path, "messages:\n  - send: '!ping'\n    expect: pong\n")
    assert str(error) == f"{path}:1:1: unknown key 'messages'"
    assert error.hint == (
        "this looks like a script, not an account file: an account file has user,"
        " password or access_token, homeserver_url"
    )


def test_an_unknown_account_key_points_at_the_readme_section(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, BASE + "password: x\npasword: y\n")
    assert str(error) == f"{path}:4:1: unknown key 'pasword'"
    assert error.hint == "check the spelling; see the README's 'The account file' section"


def test_a_lone_surrogate_in_a_password_is_refused_without_the_password(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, BASE + f'password: "{SECRET}\\ud800"\n')
    assert str(error).startswith(f"{path}:3:{12 + len(SECRET)}: a lone surrogate \\ud800")
    assert_secret_absent(str(error), error.one_line())


def test_a_wrong_type_is_said_in_plain_words_without_the_value(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, BASE + f"password: [{SECRET}]\n")
    assert str(error) == f"{path}:3:11: password: expected text, got a list"
