"""One module per resource a site owns, each with the same small vocabulary (as a
terraform provider's resources):

- `find`: what exists now (reads only);
- `desired`: the body the site file asks for;
- `diff`: the `Change`s (infra/change.py) from what exists to what is asked, or a
  refusal naming what cannot change and why;
- `create` / `update`: one change, applied;
- `wait`: until the resource is usable (bounded, infra/wait.py);
- `destroy`: delete it and wait until it is gone.

Cloud resources (DigitalOcean): `droplet`, `volume`, `image`, `firewall`, `dns`
(the domain, its A records and its ownership marker), `snapshot` (volume snapshots),
`tags`, `ssh_key` (the site's own key). Node concerns (TrueNAS): `pool`, `datasets`,
`snapshot_tasks`, `apps`, `certificate`, `ui`.

`up`, `plan`, `down`, `sweep`, `failover`, `backup`, `repair` and the fault helpers
compose these; none of them creates, awaits or deletes a resource itself.
"""
