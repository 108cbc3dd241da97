"""The MLflow UI links the jobs print: the training layout, never credentials."""

from spherereid.tracking import runs as tracking


def test_ui_links_drop_credentials_and_open_the_training_layout():
    uri = "https://alice:s3cret@mlflow.example.org:8443/mlflow/"
    assert tracking.ui_url(uri, "7", "models") == (
        "https://mlflow.example.org:8443/mlflow/#/experiments/7/models?workflowType=machine_learning"
    )
    assert tracking.ui_url("sqlite:////tmp/mlflow.db", "1") == (
        "http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning"
    )
