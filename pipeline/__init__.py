"""The Kubeflow pipeline (preprocess -> train -> evaluate -> register per dataset) and its CLIs.

python -m pipeline compile --image REGISTRY/spherereid:1.0.0 --out spherereid.yaml
python -m pipeline submit --host http://localhost:8080 --image REGISTRY/spherereid:1.0.0
python -m pipeline run-local --out outputs/kfp-local
"""
