Feature: Live data flows to a second site
  A receiving site (staging, a fork) names production in its [[replication]]: `up`
  pairs production's node with it over SSH, opens port 22 to production alone, and
  has production push its datasets' snapshots there, read-only, first in full and
  then only what changed. `promote` makes the copy writable; `check` says how far
  behind it is.

  Background:
    Given the site "origin" is up

  @destructive
  Scenario: a staging site receives production's bytes, then only what changed
    Given files written to the dataset "data" of the site "origin"
    And the site "origin" took its periodic snapshot of "data"
    When I bring the site "mirror" up
    Then up succeeded
    And every file written reads the same on the site "mirror"
    And port 22 of the site "mirror" is open to the site "origin" alone
    When one more file is written to the dataset "data" of the site "origin"
    And the site "origin" took its periodic snapshot of "data"
    And the replication to the site "mirror" runs
    Then that run sent the new file's records and not the rest of the dataset
    And every file written reads the same on the site "mirror"
    When I bring the site "mirror" up
    Then no mutating request was sent

  @destructive @fake_only
  Scenario: writes and deletions on production reach staging at the next scheduled run
    Given files written to the dataset "data" of the site "origin"
    And the site "origin" took its periodic snapshot of "data"
    And the site "weekly" is up
    When one more file is written to the dataset "data" of the site "origin"
    And a process on the node of the site "origin" deletes a file written to "data"
    And the site "origin" took its periodic snapshot of "data"
    And a week passes on the sites' clock
    Then every file written reads the same on the site "weekly"
    And the deleted file is gone from the site "weekly"
    And check finds nothing wrong with the site "weekly"

  @destructive
  Scenario: staging stays read-only until it is promoted
    Given files written to the dataset "data" of the site "origin"
    And the site "origin" took its periodic snapshot of "data"
    And the site "mirror" is up
    Then a write to the dataset "data" of the site "mirror" is refused
    When I promote the site "mirror"
    Then it says the replication was disabled and "data" made writable
    And a write to the dataset "data" of the site "mirror" succeeds
    When I promote the site "mirror"
    Then it says it was already promoted
    When I bring the site "mirror" up
    Then no mutating request was sent

  @destructive
  Scenario: a replication refused at the firewall leaves staging at its last snapshot
    Given files written to the dataset "data" of the site "origin"
    And the site "origin" took its periodic snapshot of "data"
    And the site "mirror" is up
    When one more file is written to the dataset "data" of the site "origin"
    And the site "origin" took its periodic snapshot of "data"
    And the firewall rule that lets the site "origin" into the site "mirror" is removed
    And the replication to the site "mirror" runs
    Then that run failed
    And the site "mirror" holds the first snapshot and not the second
    And check of the site "mirror" names the snapshot it holds and how far behind it is

  @destructive
  Scenario: a replication cut off mid-transfer leaves staging at its last complete snapshot
    Given files written to the dataset "data" of the site "origin"
    And the site "origin" took its periodic snapshot of "data"
    And the site "slow" is up
    When a file of 8 MiB is written to the dataset "data" of the site "origin"
    And the site "origin" took its periodic snapshot of "data"
    And the replication to the site "slow" starts
    And it has sent more than 1 MiB
    And the firewall rule that lets the site "origin" into the site "slow" is removed
    Then the run started fails
    And the site "slow" holds the first snapshot and not the second
    And check of the site "slow" names the snapshot it holds and how far behind it is
    When I bring the site "slow" up
    Then up succeeded
    And every file written reads the same on the site "slow"

  @destructive
  Scenario: a replication cut off by the loss of the source's droplet leaves staging whole, and promote works without the source
    Given the site "doomed" is up
    And files written to the dataset "data" of the site "doomed"
    And the site "doomed" took its periodic snapshot of "data"
    And the site "refuge" is up
    When a file of 8 MiB is written to the dataset "data" of the site "doomed"
    And the site "doomed" took its periodic snapshot of "data"
    And the replication to the site "refuge" starts
    And it has sent more than 1 MiB
    And the droplet of the site "doomed" is destroyed
    Then the run started fails
    And the site "refuge" holds the first snapshot and not the second
    And check of the site "refuge" names the snapshot it holds, its age, and a source that does not answer
    When I promote the site "refuge"
    Then it says "data" was made writable, its source not answering
    And the files of the first snapshot read the same on the site "refuge"
    And a write to the dataset "data" of the site "refuge" succeeds
    When I take the site "refuge" down
    And I take the site "doomed" down
    Then nothing of the site "refuge" is left
    And nothing of the site "doomed" is left

  @destructive
  Scenario: what an abandoned receiver left on production is found and removed, and nothing else
    Given files written to the dataset "data" of the site "origin"
    And the site "origin" took its periodic snapshot of "data"
    And the site "mirror" is up
    And the site "stray" is up
    And replication tasks made by hand on the node of the site "origin", one named like "stray"'s
    When the run of the site "stray" is abandoned: its state directory lost, its droplet swept
    And the replication of the site "stray" runs on the node of the site "origin"
    Then that run failed
    And check of the site "origin" finds the receiver "stray" abandoned and the receiver "mirror" there
    When I sweep the receivers of the site "origin" with a dry run
    Then it would remove what "stray" left and nothing else, and removed nothing
    When I sweep the receivers of the site "origin"
    Then the node of the site "origin" holds nothing of the site "stray" but what was made by hand
    And the replication to the site "mirror" and the tasks made by hand are as they were
    And check of the site "origin" finds no abandoned receiver

  @destructive
  Scenario: a fork replicates production without touching production's resources
    Given files written to the dataset "data" of the site "origin"
    And the site "origin" took its periodic snapshot of "data"
    When I bring the site "fork" up
    Then up succeeded
    And every file written reads the same on the site "fork"
    And the site "origin" is as it was
    When I take the site "fork" down
    Then nothing of the site "fork" is left
    And the site "origin" is as it was
    And the node of the site "origin" holds nothing of the site "fork"

  @destructive @acme @caddy
  Scenario: staging runs production's GoCD on the copy once promoted
    Given the site "gocd-prod" is up
    And a GoCD pipeline group "shipped" on the site "gocd-prod"
    And the site "gocd-prod" took its periodic snapshot of "apps"
    When I bring the site "gocd-staging" up
    Then up succeeded
    And the plan of the site "gocd-staging" says the app "gocd" waits for promote
    And GoCD of the site "gocd-staging" does not answer through 443
    And a write to the dataset "apps/gocd" of the site "gocd-staging" is refused
    When I promote the site "gocd-staging"
    Then it says the replication was disabled and "apps/gocd" made writable
    And it says the app "gocd" was created on the copy
    And GoCD of the site "gocd-staging" lists the pipeline group "shipped"
    And GoCD of the site "gocd-staging" lists the agent "gocd-staging-agent-1"
    When I promote the site "gocd-staging"
    Then it says it was already promoted
    When I bring the site "gocd-staging" up
    Then no mutating request was sent
