# postern config params (NAME TAB DEFAULT TAB MEANING) -> the roff list of postern.conf(5)'s PARAMETERS section.
BEGIN { FS = "\t" }
function roff(s) {
	gsub(/\\/, "\\e", s)
	gsub(/-/, "\\-", s)
	gsub(/"/, "\\(dq", s)
	if (s ~ /^[.']/)
		s = "\\&" s
	return s
}
NF >= 3 {
	print ".TP"
	print ".BR " roff($1) " \" (default: " ($2 == "" ? "empty" : roff($2)) ")\""
	print roff($3)
}
