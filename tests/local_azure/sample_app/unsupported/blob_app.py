"""An app with a trigger the local host does not drive: the host must refuse it at start."""

import azure.functions as func

app = func.FunctionApp()


@app.blob_trigger(arg_name="blob", path="uploads/{name}", connection="Storage")
def on_upload(blob: func.InputStream) -> None:
    pass
