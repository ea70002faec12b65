@fake_only @acme @caddy
Feature: A site on hardware you already own
  A forker who runs TrueNAS at home names that node in the site file ([node]: its
  address, admin port and the disks for the pool; its API key in a 0600 file) and
  brings the site up with the same `up`: the pool mirrored over the named disks, the
  datasets, the snapshot tasks, the front door (http-01 through the ingress) and the
  charts, with nothing made in DigitalOcean. `down` removes what the site made on the
  node and keeps the pool and its data. On the fake the node is booted through the
  world's admin API, never through DigitalOcean.

  @destructive
  Scenario: a site on my own TrueNAS node comes up, passes check and goes down
    Given a TrueNAS node of my own for the site "home-1", with disks of 20, 20 and 30 GiB
    And the site "home-1" on that node, its pool on the disks "HOME-1" and "HOME-2"
    When I bring the site "home-1" up
    Then up succeeded
    And DigitalOcean received no request
    And the pool of the site "home-1" is a healthy MIRROR of the disks "HOME-1" and "HOME-2"
    And port 443 of the site "home-1" presents, for every public hostname, a certificate that verifies to the ACME server's root
    And check finds nothing wrong with the site "home-1"
    When I take the site "home-1" down
    Then DigitalOcean received no request
    And the node keeps the pool of the site "home-1" and its datasets
    And nothing else the site "home-1" made is left on its node

  @destructive
  Scenario: a node with less memory than the charts' limits is refused before anything changes
    Given a TrueNAS node of my own for the site "home-3", with disks of 10 and 10 GiB and 4 GiB of memory
    And the site "home-3" on that node, its pool on the disks "HOME-1" and "HOME-2"
    When I bring the site "home-3" up
    Then the run fails saying "apps: the memory limits add up to"
    And the run fails saying "has for apps (4096 MiB less 4096 MiB for TrueNAS)"
    And DigitalOcean received no request
    And the node of the site "home-3" has no pool

  @destructive
  Scenario Outline: a named disk the node lacks or uses is refused before anything changes
    Given a TrueNAS node of my own for the site "home-2", with disks of 10 and 10 GiB
    And the site "home-2" on that node, its pool on the disks "HOME-1" and "<disk>"
    When I bring the site "home-2" up
    Then the run fails saying "node.disks[1]: <why>"
    And DigitalOcean received no request
    And the node of the site "home-2" has no pool

    Examples:
      | disk   | why                              |
      | HOME-9 | the node has no disk 'HOME-9'    |
      | vda    | vda (vda) is in use by pool      |
