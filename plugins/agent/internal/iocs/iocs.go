// Package iocs extracts indicators of compromise from text: IPv4 and IPv6
// addresses, domains, URLs, email addresses, MD5/SHA-1/SHA-256 hashes and
// CVE ids. It is deterministic (no model): the same text always gives the
// same sorted, de-duplicated lists. Defanged indicators (hxxp://, [.], (.),
// [:], [@]) are refanged first.
package iocs

import (
	"net/netip"
	"regexp"
	"sort"
	"strings"
)

// Set is what Extract found, each list sorted and without duplicates.
type Set struct {
	IPv4      []string `json:"ipv4"`
	IPv6      []string `json:"ipv6"`
	Domains   []string `json:"domains"`
	URLs      []string `json:"urls"`
	Emails    []string `json:"emails"`
	MD5       []string `json:"md5"`
	SHA1      []string `json:"sha1"`
	SHA256    []string `json:"sha256"`
	CVEs      []string `json:"cves"`
	Truncated bool     `json:"truncated,omitempty"`
}

// Count is the number of indicators in s.
func (s *Set) Count() int {
	return len(s.IPv4) + len(s.IPv6) + len(s.Domains) + len(s.URLs) + len(s.Emails) +
		len(s.MD5) + len(s.SHA1) + len(s.SHA256) + len(s.CVEs)
}

var (
	reURL    = regexp.MustCompile(`(?i)\b(?:https?|ftp)://[^\s<>"'\x60{}|\\^]+`)
	reEmail  = regexp.MustCompile(`(?i)\b[a-z0-9._%+-]+@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\b`)
	reCVE    = regexp.MustCompile(`(?i)\bCVE-\d{4}-\d{4,7}\b`)
	reHex    = regexp.MustCompile(`\b[0-9a-fA-F]{32,64}\b`)
	reIPv4   = regexp.MustCompile(`\b\d{1,3}(?:\.\d{1,3}){3}\b`)
	reIPv6   = regexp.MustCompile(`(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?:\d{1,3}(?:\.\d{1,3}){3})?`)
	reDomain = regexp.MustCompile(`(?i)\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\b`)
)

// fileExts are "top-level domains" that are far more often file name
// extensions in logs (app.log, setup.exe) and are not taken for domains.
var fileExts = map[string]bool{}

func init() {
	for _, e := range strings.Fields(`log txt csv tsv json xml yaml yml html htm md exe dll sys bin dat tmp bak
		py js ts sh ps1 bat cmd conf cfg ini go c h cpp java class jar zip gz tgz tar rar 7z pdf doc docx
		xls xlsx ppt pptx png jpg jpeg gif svg so pem key crt cer pcap pcapng evtx lnk vbs hta msi iso img db sqlite`) {
		fileExts[e] = true
	}
}

var refang = strings.NewReplacer(
	"[.]", ".", "(.)", ".", "{.}", ".", "[dot]", ".", "[:]", ":", "[@]", "@", "[at]", "@",
	"hxxps://", "https://", "hxxp://", "http://", "hXXps://", "https://", "hXXp://", "http://",
	"HXXPS://", "https://", "HXXP://", "http://", "fxp://", "ftp://",
)

// Extract finds the indicators in text, at most max of each kind (max ≤ 0:
// no limit); Truncated says a kind had more.
func Extract(text string, max int) *Set {
	text = refang.Replace(strings.ToValidUTF8(text, "\uFFFD"))
	s := &Set{}
	add := func(list *[]string, v string) { *list = append(*list, v) }

	for _, u := range reURL.FindAllString(text, -1) {
		u = strings.TrimRight(u, ".,;:!?)]}'\"")
		if len(u) > len("http://") && len(u) <= 2048 {
			add(&s.URLs, u)
		}
	}
	for _, e := range reEmail.FindAllString(text, -1) {
		add(&s.Emails, strings.ToLower(e))
	}
	for _, c := range reCVE.FindAllString(text, -1) {
		add(&s.CVEs, strings.ToUpper(c))
	}
	for _, h := range reHex.FindAllString(text, -1) {
		switch len(h) {
		case 32:
			add(&s.MD5, strings.ToLower(h))
		case 40:
			add(&s.SHA1, strings.ToLower(h))
		case 64:
			add(&s.SHA256, strings.ToLower(h))
		}
	}
	for _, loc := range reIPv4.FindAllStringIndex(text, -1) {
		// Not a piece of a longer dotted number (a version 1.2.3.4.5).
		if dottedDigit(text, loc[0]-2, loc[0]-1) || dottedDigit(text, loc[1], loc[1]+1) {
			continue
		}
		if a, err := netip.ParseAddr(text[loc[0]:loc[1]]); err == nil && a.Is4() {
			add(&s.IPv4, a.String())
		}
	}
	for _, loc := range reIPv6.FindAllStringIndex(text, -1) {
		if loc[0] > 0 && isWordByte(text[loc[0]-1]) || loc[1] < len(text) && isWordByte(text[loc[1]]) {
			continue
		}
		c := text[loc[0]:loc[1]]
		if a, err := netip.ParseAddr(c); err == nil && a.Is6() && !a.Is4In6() && a.Zone() == "" && c != "::" {
			add(&s.IPv6, a.String())
		}
	}
	for _, d := range reDomain.FindAllString(text, -1) {
		d = strings.ToLower(d)
		tld := d[strings.LastIndexByte(d, '.')+1:]
		if !fileExts[tld] && len(d) <= 253 {
			add(&s.Domains, d)
		}
	}
	for _, l := range []*[]string{&s.IPv4, &s.IPv6, &s.Domains, &s.URLs, &s.Emails, &s.MD5, &s.SHA1, &s.SHA256, &s.CVEs} {
		*l = uniq(*l)
		if max > 0 && len(*l) > max {
			*l, s.Truncated = (*l)[:max], true
		}
	}
	return s
}

// dottedDigit reports whether text[i] is '.' and text[j] a digit (either
// side of an IPv4 match).
func dottedDigit(text string, i, j int) bool {
	lo, hi := min(i, j), max(i, j)
	if lo < 0 || hi >= len(text) {
		return false
	}
	dot, dig := text[i], text[j]
	return dot == '.' && dig >= '0' && dig <= '9'
}

func isWordByte(b byte) bool {
	return b == ':' || b == '.' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// uniq sorts l and drops duplicates; never nil, so JSON shows [].
func uniq(l []string) []string {
	sort.Strings(l)
	out := make([]string, 0, len(l))
	for i, v := range l {
		if i == 0 || v != l[i-1] {
			out = append(out, v)
		}
	}
	return out
}
