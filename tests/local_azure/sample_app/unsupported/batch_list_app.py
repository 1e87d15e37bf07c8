"""A batch trigger annotated `list[...]`: the Python worker refuses to load it, so the local host must too."""

import azure.functions as func

app = func.FunctionApp()


@app.service_bus_queue_trigger(arg_name="msgs", queue_name="inbox", connection="SAMPLE_SERVICEBUS",
                               cardinality=func.Cardinality.MANY)
def batch(msgs: list[func.ServiceBusMessage]) -> None:
    return None
