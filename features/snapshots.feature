Feature: Snapshots that really restore
  Snapshots of the site's datasets bring back exact bytes, in place or beside the
  live data; periodic snapshot tasks keep what their retention says and no more;
  and a DigitalOcean snapshot of a pool volume is an off-node backup from which
  the pool can be imported again.

  Background:
    Given the site "vault" is up

  @destructive
  Scenario: rolling back to a snapshot restores the exact bytes
    Given files written to the dataset "data" of the site "vault"
    And a snapshot "good" of the dataset "data" of the site "vault"
    When the files written are overwritten with other bytes
    And I roll the dataset "data" of the site "vault" back to "good"
    Then every file written reads back byte-identical

  @destructive
  Scenario: a clone shows the old data beside the new
    Given files written to the dataset "data" of the site "vault"
    And a snapshot "then" of the dataset "data" of the site "vault"
    When the files written are overwritten with other bytes
    And I clone the snapshot "then" of the dataset "data" of the site "vault" to "data-then"
    Then the files in "data-then" hold the bytes first written
    And the files in "data" hold the new bytes

  @destructive @fake_only
  Scenario: a periodic snapshot task keeps what its retention says and no more
    Given the site "vault" takes hourly snapshots of "data" kept for one day
    When two days pass on the site's clock
    Then the dataset "data" of the site "vault" has between 23 and 25 periodic snapshots
    And none of them outlived its day by more than one hourly run

  @destructive
  Scenario: a volume snapshot is an off-node backup the pool imports from
    Given files written to the dataset "data" of the site "vault"
    When I back up the volume "pool-a" of the site "vault" with a DigitalOcean snapshot
    And I verify that backup on a scratch droplet
    Then the scratch node found the pool "tank" on the restored volume
    And nothing of the verification is left behind
