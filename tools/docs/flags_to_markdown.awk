# Turns absl's `--helpon=main` output into a Markdown table: | flag | default | meaning |.
# Input lines look like:  "    --name (description that may wrap
#                               over lines); default: value;"
function flush() {
  if (name == "") return
  desc = text
  def = ""
  if (match(desc, /\); default: .*;$/)) {
    def = substr(desc, RSTART + 12, RLENGTH - 13)
    desc = substr(desc, 1, RSTART - 1)
  }
  sub(/^\(/, "", desc)
  gsub(/\|/, "\\|", desc)
  printf "| `--%s` | `%s` | %s |\n", name, def, desc
  name = ""; text = ""
}
/^    --/ {
  flush()
  line = $0
  sub(/^    --/, "", line)
  name = line; sub(/ .*/, "", name)
  text = substr(line, length(name) + 2)
  next
}
/^      / && name != "" { line = $0; sub(/^ +/, "", line); text = text " " line; next }
{ flush() }
END {
  flush()
}
