Feature: Mirrored storage that survives losing a volume
  The node's data lives in one ZFS pool mirrored over the site's two block volumes.
  Losing either volume loses nothing; a replacement resilvers the mirror; silent
  corruption on one member is repaired; losing both is reported as data loss.

  Background:
    Given the site "store" is up

  @destructive
  Scenario: the pool is a mirror of the two site volumes, never the boot disk
    Then the pool of the site "store" is a healthy MIRROR of exactly its two volumes

  @destructive
  Scenario: files stay byte-identical when one volume is lost
    Given files written to the dataset "data" of the site "store"
    When the volume "pool-b" of the site "store" is detached
    Then the pool of the site "store" is DEGRADED
    And every file written reads back byte-identical
    When I repair the site "store"
    Then the pool of the site "store" is a healthy MIRROR of exactly its two volumes
    And every file written reads back byte-identical

  @destructive
  Scenario: a deleted volume is replaced and the mirror resilvers
    Given files written to the dataset "data" of the site "store"
    When the volume "pool-a" of the site "store" is detached and deleted
    Then the pool of the site "store" is DEGRADED
    When I repair the site "store"
    Then the repair created a new volume "store-pool-a" and resilvered the pool
    And the pool of the site "store" is a healthy MIRROR of exactly its two volumes
    And every file written reads back byte-identical

  @destructive @fake_only
  Scenario: bit rot on one member is found and repaired by a scrub
    Given files written to the dataset "data" of the site "store"
    When one file rots on the volume "pool-a" of the site "store"
    And I scrub the pool of the site "store"
    Then the scrub repaired at least one error
    And every file written reads back byte-identical

  @destructive
  Scenario: losing both volumes is reported as data loss
    Given files written to the dataset "data" of the site "store"
    When the volume "pool-a" of the site "store" is detached
    And the volume "pool-b" of the site "store" is detached
    Then check reports the pool of the site "store" as lost
    And reading the files written fails instead of returning wrong bytes
