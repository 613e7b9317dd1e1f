# Shell functions the benchmark scripts share (sourced, not run).

# Where a binary comes from: the commit of the git tree it was built in.
origin() {
    local tree
    tree=$(git -C "$(dirname "$1")" rev-parse --show-toplevel 2>/dev/null) || { echo "\`$1\`"; return; }
    printf '`%s`, built in %s at %s%s' "$1" "$tree" "$(git -C "$tree" rev-parse --short HEAD)" \
        "$(git -C "$tree" diff --quiet HEAD -- src || echo ' with uncommitted changes in src/')"
}
