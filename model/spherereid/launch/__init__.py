"""Scale-out launchers: torchrun inside one pod, and Kubeflow Trainer v2 TrainJobs across nodes.

Nothing here imports torch's training code: the launchers start `spherereid.stages.train` as a command.
"""
