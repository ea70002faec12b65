@acme
Feature: A running site passes its checks, read-only
  A forker who already runs the hosting points the suite at it (`--target existing`,
  README.md) and learns whether it holds up, without the suite changing anything:
  on that target this is the one feature that runs, every scenario that would change
  the site is skipped. On the fake and real targets the same checks run against a
  site the suite brings up itself.

  Scenario: an existing site passes its checks
    Given the site under test is up
    Then check finds no failure on the site under test
    And every public hostname of the site under test presents a valid certificate on 443
    And http on every public hostname of the site under test redirects to https
