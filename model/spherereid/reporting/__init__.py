"""Reports people read: plots, the preprocess report and the main-job summary."""
