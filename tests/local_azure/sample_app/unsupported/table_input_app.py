"""An app with an input binding the local host does not provide: the host must refuse it at start."""

import azure.functions as func

app = func.FunctionApp()


@app.route(route="rows")
@app.table_input(arg_name="rows", table_name="runs", connection="Tables")
def rows(req: func.HttpRequest, rows: str) -> func.HttpResponse:
    return func.HttpResponse(rows)
