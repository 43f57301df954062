"""The renderers: pure functions from the plan to flagd flags, Prometheus rules and their promtool
tests, Grafana dashboards, Kubernetes manifests and workloads, and the Locust command line."""
