# A gateway with one pool and a PSK peer.
interface "wlan" {
  link        = "wlan0"
  access_type = "wlan"
  priority    = 10
}

interface "ran" {
  link          = "rmnet0"
  access_type   = "ran"
  priority      = 20
  metered       = true
}

secret "ue-psk" {
  type = "psk"
  file = "gw.psk"
}

pool "ue" {
  ranges      = ["10.8.0.0/24"]
  dns_servers = ["10.8.0.1"]
}

connection "ue" {
  role      = "responder"
  local_id  = "gw.example.net"
  pool      = "ue"
  mobike    = true
  local_auth {
    psk_secret = "ue-psk"
  }
  remote_auth {
    psk_secret = "ue-psk"
  }
  dpd_interval = "30s"

  child "net" {
    local_ts  = ["0.0.0.0/0"]
    remote_ts = ["10.8.0.0/24"]
  }
}
