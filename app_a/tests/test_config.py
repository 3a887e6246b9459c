import pytest

from app_a import config, create_app


def test_defaults_point_at_the_local_app_b():
    settings = config.load({})
    assert settings.app_b_url == "http://127.0.0.1:5001"
    assert (settings.app_b_timeout, settings.app_b_connect_timeout) == (2.0, 0.5)


def test_calls_to_app_b_leave_two_threads_by_default():
    assert config.load({}).app_b_max_calls == 6  # 8 threads
    assert config.load({"GUNICORN_THREADS": "2"}).app_b_max_calls == 1
    assert config.load({"GUNICORN_THREADS": "4", "APP_B_MAX_CALLS": "3"}).app_b_max_calls == 3


def test_trailing_slash_is_normalised():
    assert config.load({"APP_B_URL": "http://app-b:5001/"}).app_b_url == "http://app-b:5001"


@pytest.mark.parametrize("environ, message", [
    ({"APP_B_URL": "app-b:5001"}, "APP_B_URL must be an http"),
    ({"APP_B_URL": "ftp://app-b"}, "APP_B_URL must be an http"),
    ({"APP_B_URL": "http://"}, "APP_B_URL must be an http"),
    ({"APP_B_URL": "http://app-b/?x=1"}, "APP_B_URL must be an http"),
    ({"APP_B_URL": "http://app-b:65536"}, "APP_B_URL must be an http"),
    ({"APP_B_URL": "http://app-b:0"}, "APP_B_URL must be an http"),
    ({"APP_B_URL": "http://app-b:port"}, "APP_B_URL must be an http"),
    ({"APP_B_URL": "http://app-b:5001/jöbs"}, "APP_B_URL must be an http"),
    ({"APP_B_URL": "http://app-b:5001/a b"}, "APP_B_URL must be an http"),
    ({"APP_B_TIMEOUT": "0"}, "APP_B_TIMEOUT must be a positive float"),
    ({"APP_B_TIMEOUT": "soon"}, "APP_B_TIMEOUT must be a positive float"),
    ({"APP_B_CONNECT_TIMEOUT": "-1"}, "APP_B_CONNECT_TIMEOUT"),
    ({"GUNICORN_THREADS": "0"}, "GUNICORN_THREADS must be a positive int"),
    ({"GUNICORN_THREADS": "1"}, "GUNICORN_THREADS must be at least 2"),
    ({"GUNICORN_THREADS": "4", "APP_B_MAX_CALLS": "4"}, "APP_B_MAX_CALLS must be below GUNICORN_THREADS"),
    ({"APP_B_MAX_CALLS": "0"}, "APP_B_MAX_CALLS must be a positive int"),
    ({"MAX_TOKEN_LENGTH": "1.5"}, "MAX_TOKEN_LENGTH must be a positive int"),
    ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
])
def test_invalid_settings_fail_fast_with_a_clear_message(environ, message):
    with pytest.raises(config.ConfigError, match=message):
        create_app(environ)
