"""backend=argo: the sweep as an Argo Workflow (or a nightly CronWorkflow), built with Hera."""
