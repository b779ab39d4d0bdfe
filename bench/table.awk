# bench/table.awk: owns how bench/run's measurements are shown: one table, as plain text
# (style=text) or as Markdown (style=md), from the tab-separated rows bench/run collects.
# Plain POSIX awk (Debian's default is mawk): no gawk extensions.
#
# Input rows: key, case, count, wall_s, rate, send_rate, cpu_s, rss_kb.
#   rate       per second over the whole run: messages (for openssl, signatures, as it reports)
#   send_rate  mailshot's own figure from its summary line (its sending phase only), or "-"
#   count      "-" when the case is not a count of messages (openssl runs for a fixed time)

BEGIN {
    FS = "\t"
    ncol = split("case|messages|wall s|msg/s|send-phase msg/s|CPU s (user+sys)|CPU ms/msg|peak RSS MB", head, "|")
    # Right-align the numbers, left-align the case name.
    for (c = 2; c <= ncol; c++) right[c] = 1
}

# 12345678 -> 12,345,678: counts are read at a glance.
function commas(n,    s, out) {
    s = sprintf("%d", n)
    out = ""
    while (length(s) > 3) {
        out = "," substr(s, length(s) - 2) out
        s = substr(s, 1, length(s) - 3)
    }
    return s out
}

function num(x, places) {
    if (x == "-" || x == "") return "-"
    return sprintf("%." places "f", x)
}

{
    n++
    cell[n, 1] = $2
    cell[n, 2] = ($3 == "-") ? "-" : commas($3)
    cell[n, 3] = num($4, 2)
    cell[n, 4] = ($5 == "-") ? "-" : commas($5 + 0.5)
    cell[n, 5] = ($6 == "-") ? "-" : commas($6 + 0.5)
    cell[n, 6] = num($7, 2)
    # CPU per message only means something for a count of messages.
    cell[n, 7] = ($3 == "-" || $3 + 0 == 0) ? "-" : sprintf("%.3f", $7 * 1000 / $3)
    cell[n, 8] = num($8 / 1024, 1)
}

END {
    if (style == "md") {
        line = "|"
        sep = "|"
        for (c = 1; c <= ncol; c++) {
            line = line " " head[c] " |"
            sep = sep (right[c] ? " ---: |" : " --- |")
        }
        print line
        print sep
        for (r = 1; r <= n; r++) {
            line = "|"
            for (c = 1; c <= ncol; c++) line = line " " cell[r, c] " |"
            print line
        }
        exit
    }
    for (c = 1; c <= ncol; c++) width[c] = length(head[c])
    for (r = 1; r <= n; r++)
        for (c = 1; c <= ncol; c++)
            if (length(cell[r, c]) > width[c]) width[c] = length(cell[r, c])
    line = ""
    rule = ""
    for (c = 1; c <= ncol; c++) {
        line = line (c > 1 ? "  " : "") pad(head[c], width[c], right[c])
        rule = rule (c > 1 ? "  " : "") dashes(width[c])
    }
    print line
    print rule
    for (r = 1; r <= n; r++) {
        line = ""
        for (c = 1; c <= ncol; c++) line = line (c > 1 ? "  " : "") pad(cell[r, c], width[c], right[c])
        print line
    }
}

function pad(s, w, right_align) {
    return right_align ? sprintf("%" w "s", s) : sprintf("%-" w "s", s)
}

function dashes(w,    s) {
    s = ""
    while (length(s) < w) s = s "-"
    return s
}
