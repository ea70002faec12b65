Feature: The site survives losing its droplet
  The droplet, or the host under it, may die at any time. Everything that matters
  lives on the two volumes, so `failover` brings the site back on a new droplet
  with every file, dataset and snapshot intact, and the DNS records moved to it.

  Background:
    Given the account holds resources that belong to no site

  @destructive
  Scenario: the droplet is destroyed and failover brings the site back whole
    Given the site "phoenix" is up
    And files written to the dataset "data" of the site "phoenix"
    And a snapshot "before-loss" of the dataset "data" of the site "phoenix"
    When the droplet of the site "phoenix" is destroyed
    And I fail the site "phoenix" over
    Then the site "phoenix" runs on a new droplet
    And every file written reads back byte-identical
    And the dataset "data" of the site "phoenix" still has the snapshot "before-loss"
    And every hostname of the site "phoenix" resolves to its droplet
    And check finds nothing wrong with the site "phoenix"
    And the resources that belong to no site are as they were

  @destructive @fake_only
  Scenario: the droplet's host fails and failover moves the site
    Given the site "ember" is up
    And files written to the dataset "data" of the site "ember"
    When the host of the droplet of the site "ember" fails
    And I fail the site "ember" over
    Then the site "ember" runs on a new droplet
    And every file written reads back byte-identical
    And check finds nothing wrong with the site "ember"
    And the resources that belong to no site are as they were

  @destructive
  Scenario: failover of a healthy site changes nothing
    Given the site "phoenix" is up
    When I fail the site "phoenix" over
    Then the failover said the droplet is alive and changed nothing
