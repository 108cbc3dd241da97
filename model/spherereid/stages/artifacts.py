"""The file names that stages hand to each other (the stage contract of DEVELOPERS.md), in one place."""

# train -> evaluate, register
MODEL_FILE = "model.pt"  # {"constructor", "state_dict", "num_classes"}
RUN_FILE = "mlflow_run.json"  # the MLflow run reference
LINEAGE_FILE = "lineage.json"  # dataset, dataset hash, input size
RESULT_FILE = "train_result.json"  # epochs, final loss/accuracy, run id (read back after torchrun)
# evaluate -> register
METRICS_FILE = "metrics.json"
CHAIN_FILE = "chain.json"  # the ImageChain evaluated; register serves exactly this chain
# register
REGISTRATION_FILE = "registration.json"
