# An end user with RAN and WLAN, one multipath connection and three
# steering rules.
interface "wlan" {
  link        = "wlan0"
  access_type = "wlan"
  priority    = 10
}

interface "ran" {
  link        = "rmnet0"
  access_type = "ran"
  priority    = 20
  metered     = true
}

secret "gw-psk" {
  type = "psk"
  file = "gw.psk"
}

connection "gw" {
  role             = "initiator"
  remote_addresses = ["203.0.113.1"]
  local_interfaces = ["wlan", "ran"]
  multipath        = true
  local_auth {
    psk_secret = "gw-psk"
  }
  remote_auth {
    psk_secret = "gw-psk"
  }

  child "all" {
    local_ts     = ["0.0.0.0/0"]
    remote_ts    = ["0.0.0.0/0"]
    start_action = "none"
  }
}

# Voice on RAN while it works, else WLAN.
steering_rule "voice" {
  mode           = "active_standby"
  precedence     = 10
  probe_interval = "100ms"

  match {
    source_prefixes      = ["10.8.0.0/24"]
    destination_prefixes = ["198.51.100.0/24", "2001:db8::1"]
    protocol             = "udp"
    source_ports         = 5060
    destination_ports    = "5060-5061"
    dscp                 = ["ef", 34]
    connection           = "gw"
  }

  target {
    interface = "ran"
  }
  target {
    interface = "wlan"
  }
}

# Bulk spread three to one over WLAN and RAN.
steering_rule "bulk" {
  mode       = "load_balance"
  precedence = 100

  match {
    protocol = "tcp"
  }

  target {
    access_type = "wlan"
    weight      = 3
  }
  target {
    access_type = "ran"
    weight      = 1
  }
}

# Everything else: WLAN first, back to it when it returns.
steering_rule "rest" {
  mode       = "priority"
  precedence = 1000

  target {
    access_type = "wlan"
  }
  target {
    access_type = "ran"
  }
}
