"""Discovery: the host finds what `app.get_functions()` declares and refuses what it cannot drive."""

from __future__ import annotations

import pytest

from local_azure.host import DiscoveryError, FunctionsHost
from tests.local_azure.sample_app.harness import APP_REFERENCE, SAMPLE_APP, SAMPLE_LOCAL_SETTINGS, running_host

pytestmark = pytest.mark.timeout(30)
UNSUPPORTED = SAMPLE_APP / "unsupported"
NO_BROKER = "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v"


def test_the_host_lists_every_function_with_its_trigger() -> None:
    with running_host({"SAMPLE_SERVICEBUS": NO_BROKER}) as host:
        found = {spec.name: spec.trigger_type for spec in host.functions}

    assert found["relay"] == "serviceBusTrigger"
    assert found["items"] == "httpTrigger"
    assert found["tick"] == "timerTrigger"


def test_app_setting_expressions_in_bindings_are_resolved() -> None:
    with running_host({"SAMPLE_SERVICEBUS": NO_BROKER}) as host:
        relay = next(spec for spec in host.functions if spec.name == "relay")

    assert relay.queue_name == "inbox"


def test_route_methods_and_auth_level_are_read_from_the_trigger() -> None:
    with running_host({"SAMPLE_SERVICEBUS": NO_BROKER}) as host:
        items = next(spec for spec in host.functions if spec.name == "items")

    assert items.route == "items/{id:int}/{name?}"
    assert items.methods == ("GET", "POST")
    assert items.auth_level == "function"


def test_a_trigger_the_host_does_not_support_is_refused_by_name() -> None:
    host = FunctionsHost(UNSUPPORTED, app="blob_app:app")

    with pytest.raises(DiscoveryError, match=r"'on_upload'.*'blobTrigger' is not supported"):
        host.start()


def test_an_input_binding_the_host_does_not_provide_is_refused() -> None:
    host = FunctionsHost(UNSUPPORTED, app="table_input_app:app")

    with pytest.raises(DiscoveryError, match=r"'rows'.*table"):
        host.start()


def test_a_batch_trigger_whose_annotation_the_worker_refuses_is_refused() -> None:
    host = FunctionsHost(UNSUPPORTED, app="batch_list_app:app", settings={"SAMPLE_SERVICEBUS": NO_BROKER})

    with pytest.raises(DiscoveryError, match=r"'batch'.*typing.List\[func.ServiceBusMessage\]"):
        host.start()


def test_a_missing_connection_setting_is_refused_by_name() -> None:
    host = FunctionsHost(SAMPLE_APP, app=APP_REFERENCE, local_settings=SAMPLE_LOCAL_SETTINGS)

    with pytest.raises(DiscoveryError, match="SAMPLE_SERVICEBUS"):
        host.start()


def test_an_app_that_cannot_be_imported_is_refused_with_the_reason() -> None:
    host = FunctionsHost(SAMPLE_APP, app="no_such_module:app")

    with pytest.raises(DiscoveryError, match="no_such_module"):
        host.start()


def test_a_refused_start_leaves_the_environment_as_it_was() -> None:
    import os
    host = FunctionsHost(UNSUPPORTED, app="blob_app:app", settings={"SAMPLE_LEFT_BEHIND": "no"})

    with pytest.raises(DiscoveryError):
        host.start()

    assert "SAMPLE_LEFT_BEHIND" not in os.environ
