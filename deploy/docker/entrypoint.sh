#!/bin/sh
# Entry point of the Rateline image: one image for every process.
#
#   docker run IMAGE <service> <command>     e.g.  docker run IMAGE customer serve
#   docker run -e SERVICE=customer IMAGE migrate
#
# runs `python -m rateline_<service> <command>`; <service> is gateway, customer, catalog,
# usage, invoicing, payment or webhooks, <command> is serve (default) or migrate (or, for
# the gateway, create-client ...).
set -eu

services="gateway customer catalog usage invoicing payment webhooks"

usage() {
    echo "usage: <service> [serve|migrate|...]   services: $services" >&2
    exit 64
}

service=""
if [ $# -gt 0 ]; then
    for known in $services; do
        if [ "$1" = "$known" ]; then
            service=$1
            shift
            break
        fi
    done
fi
if [ -z "$service" ]; then
    service=${SERVICE:-}
fi
case " $services " in
    *" $service "*) ;;
    *) usage ;;
esac
if [ $# -eq 0 ]; then
    set -- serve
fi
exec python -m "rateline_${service}" "$@"
