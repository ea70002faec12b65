@acme @caddy @redis
Feature: The project's services on the node: GoCD, CockroachDB and uro behind the front door
  The node runs the project's CI server (GoCD, with an agent), its database
  (CockroachDB) and its backend (uro, with Redis) as TrueNAS apps built from the
  site's charts. The public ones answer through the ingress on 443 with the site
  certificate; the database console only to the admin network. Their data lives on
  the mirrored pool, survives restarts and upgrades, and is in the site's snapshots.

  @destructive
  Scenario: every app of the site reaches RUNNING
    Given the site "apps-1" is up
    Then check reports the apps cockroachdb, gocd and uro of the site "apps-1" as running

  @destructive
  Scenario: the public apps answer healthy through https on 443
    Given the site "apps-1" is up
    Then GoCD's health of the site "apps-1" answers OK through https on 443
    And uro's health of the site "apps-1" answers healthy through https on 443

  @destructive
  Scenario: the CockroachDB console answers the admin network only
    Given the site "apps-1" is up
    Then CockroachDB of the site "apps-1" answers ready on its console port from an address in the admin CIDR
    And the CockroachDB console of the site "apps-1" is unreachable from an internet address

  @destructive
  Scenario: GoCD's data lives on the mirrored pool and survives a restart of the app
    Given the site "apps-1" is up
    When I create a GoCD pipeline group "restarted" on the site "apps-1"
    Then GoCD's config of the site "apps-1" is a file on the site's pool
    When I restart the app "gocd" of the site "apps-1"
    Then GoCD of the site "apps-1" lists the pipeline group "restarted"

  @destructive
  Scenario: rolling the apps dataset back restores GoCD's data
    Given the site "apps-1" is up
    And a GoCD pipeline group "snapshotted" on the site "apps-1"
    When I snapshot the apps dataset of the site "apps-1"
    And I delete the GoCD pipeline group "snapshotted" on the site "apps-1"
    Then GoCD of the site "apps-1" does not list the pipeline group "snapshotted"
    When I stop the app "gocd" of the site "apps-1", roll its data back to that snapshot and start it
    Then GoCD of the site "apps-1" lists the pipeline group "snapshotted"

  @destructive
  Scenario: upgrading a chart updates the app in place without losing its data
    Given the site "apps-1" is up
    And a GoCD pipeline group "upgraded" on the site "apps-1"
    And the charts with the gocd chart's version bumped
    When I bring the site "apps-1" up
    Then up succeeded
    And the app "gocd" of the site "apps-1" was updated in place to the bumped chart version
    And GoCD of the site "apps-1" lists the pipeline group "upgraded"
    And GoCD's health of the site "apps-1" answers OK through https on 443

  @destructive
  Scenario: a GoCD agent registers with the server
    Given the site "apps-1" is up
    Then GoCD of the site "apps-1" lists the agent "apps-1-agent-1"

  # Runs `up` (refused before any request): never against a site someone runs.
  @destructive
  Scenario Outline: a missing secret or an invalid app setting is refused before anything is deployed
    Given an apps site file where <field> is <value>
    When I run "up" with that site file
    Then it exits with code 2 and a message naming "<field>"
    And nothing was created in the account

    Examples:
      | field                                          | value               |
      | apps.uro.image                                 | missing             |
      | apps.uro.image                                 | "ghcr.io/v-sekai/uro:latest" |
      | apps.cockroachdb.console_port                  | 80                  |
      | apps.gocd.secret_files.agent_auto_register_key | "no-such-key-file"  |
