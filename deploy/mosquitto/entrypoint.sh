#!/bin/sh
# First start: write the password file from MQTT_QUANTRAC_PASSWORD and MQTT_STATION_PASSWORD (compose.env), owned
# by the mosquitto user; later starts keep it (change passwords with mosquitto_passwd inside the container).
set -eu
passwd=/mosquitto/data/passwd
if [ ! -s "$passwd" ]; then
    : "${MQTT_QUANTRAC_PASSWORD:?set MQTT_QUANTRAC_PASSWORD in compose.env}"
    : "${MQTT_STATION_PASSWORD:?set MQTT_STATION_PASSWORD in compose.env}"
    touch "$passwd"
    chmod 0700 "$passwd"
    mosquitto_passwd -b "$passwd" quantrac "$MQTT_QUANTRAC_PASSWORD"
    mosquitto_passwd -b "$passwd" station "$MQTT_STATION_PASSWORD"
    chown mosquitto:mosquitto "$passwd"
    echo "entrypoint: wrote $passwd (users quantrac, station)"
fi
exec /usr/sbin/mosquitto -c /mosquitto/config/mosquitto.conf
