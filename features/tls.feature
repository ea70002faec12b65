@acme @caddy
Feature: The front door: public services on 443 with a certificate browsers trust
  Public hostnames answer on 443 with a certificate from the site's ACME server
  (Let's Encrypt on a real account, pebble on the fake), obtained by http-01 through
  the ingress on port 80 or by dns-01 through DigitalOcean DNS. Plain http redirects
  to https. The TrueNAS admin UI moves to the admin port, with the same certificate,
  and is reachable only from the admin network.

  @destructive
  Scenario Outline: a site brought up with <challenge> presents a valid certificate
    Given the site "<site>" uses the <challenge> challenge
    When I bring the site "<site>" up
    Then up succeeded
    And port 443 of the site "<site>" presents, for every public hostname, a certificate that verifies to the ACME server's root
    And port 443 of the site "<site>" refuses TLS 1.0 and TLS 1.1
    And http on every public hostname of the site "<site>" redirects to https
    And a hostname the site "<site>" does not publish gets the ingress's 404 page
    And the TrueNAS admin UI of the site "<site>" presents the site certificate on the admin port
    And check reports the certificate of the site "<site>" as valid

    Examples:
      | site   | challenge |
      | door-h | http-01   |
      | door-d | dns-01    |

  @destructive
  Scenario: the admin UI is reachable from the admin network only
    Given the site "door-h" uses the http-01 challenge
    And the site "door-h" is up
    Then the TrueNAS admin UI of the site "door-h" is unreachable from an internet address
    And the TrueNAS admin UI of the site "door-h" answers from an address in the admin CIDR
    And ports 80 and 443 of the site "door-h" answer from an internet address

  @destructive
  Scenario: a certificate close to its expiry is renewed by up without downtime
    Given the site "door-h" uses the http-01 challenge
    And the site "door-h" is up
    When the site's clock reaches 10 days before the certificate of the site "door-h" expires
    Then check reports the certificate of the site "door-h" as due for renewal
    When I bring the site "door-h" up while a client keeps connecting to its port 443
    Then up succeeded
    And port 443 of the site "door-h" presents a new certificate with more than 30 days left
    And no connection to port 443 failed during the renewal

  @destructive
  Scenario: a public hostname whose DNS points elsewhere fails renewal with a clear error
    Given the site "door-h" uses the http-01 challenge
    And the site "door-h" is up
    And the A record of "door-h.example.test" is changed to an address where nothing listens
    When I renew the certificate of the site "door-h"
    Then the renewal failed naming the domain "door-h.example.test" and the challenge "http-01"
    And port 443 of the site "door-h" still presents its certificate

  @destructive @fake_only
  Scenario: port 80 closed on the way to the droplet fails renewal with a clear error
    Given the site "door-h" uses the http-01 challenge
    And the site "door-h" is up
    And the network drops port 80 on the way to the droplets
    When I renew the certificate of the site "door-h"
    Then the renewal failed naming the domain "door-h.example.test" and the challenge "http-01"
    And port 443 of the site "door-h" still presents its certificate

  # Runs `up` (refused before any request): never against a site someone runs.
  @destructive
  Scenario Outline: an invalid ingress setting is refused before anything is deployed
    Given a site file where <field> is <value>
    When I run "up" with that site file
    Then it exits with code 2 and a message naming "<field>"
    And nothing was created in the account

    Examples:
      | field                        | value     |
      | apps.ingress.tls_min_version | "tls1.0"  |
      | apps.ingress.memory_limit    | "lots"    |
      | apps.ingress.colour          | "blue"    |
