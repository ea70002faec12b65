"""Charts: the project's TrueNAS apps, each a directory `charts/<app>/` with a
`chart.toml` (metadata, settings, secrets, files, datasets, routes) and a
`compose.yaml` template.

- catalog.py  loads a chart directory into typed models (errors name file and field);
- settings.py checks a site file's `[apps.<chart>]` values against a chart;
- render.py   fills the template with settings, secrets and the site's facts;
- validate.py refuses what must not be deployed (Compose schema, unpinned images,
              host paths outside the pool, missing secrets, port clashes);
- deploy.py   creates, updates and deletes the apps on a TrueNAS node.

This package's __init__ imports nothing: infra.site imports catalog/settings, and
render imports infra.site, so an eager import here would be a cycle.
"""
