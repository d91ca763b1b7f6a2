package iocs

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestExtract(t *testing.T) {
	text := `2024-05-01T12:30:45Z alert: beacon from 10.0.0.5 to 203.0.113.7:443 (hxxps://evil-cdn[.]example[.]net/payload.bin?id=1),
version 1.2.3.4.5 is not an address, nor is 999.1.1.1; v6 2001:db8::1 and fe80::1%eth0 and ::ffff:1.2.3.4;
mac 00:1a:2b:3c:4d:5e; time 12:30:45. Contact SOC@Example.COM or ops[@]corp[.]example[.]org.
md5 D41D8CD98F00B204E9800998ECF8427E sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709
sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 cve-2021-44228 CVE-2024-3094.
files: setup.exe app.log; again 10.0.0.5 and http://203.0.113.7/x.`
	got := Extract(text, 0)
	want := &Set{
		// ::ffff:1.2.3.4 is the IPv4 address 1.2.3.4; fe80::1%eth0 is
		// fe80::1 on an interface.
		IPv4:    []string{"1.2.3.4", "10.0.0.5", "203.0.113.7"},
		IPv6:    []string{"2001:db8::1", "fe80::1"},
		Domains: []string{"corp.example.org", "evil-cdn.example.net", "example.com"},
		URLs:    []string{"http://203.0.113.7/x", "https://evil-cdn.example.net/payload.bin?id=1"},
		Emails:  []string{"ops@corp.example.org", "soc@example.com"},
		MD5:     []string{"d41d8cd98f00b204e9800998ecf8427e"},
		SHA1:    []string{"da39a3ee5e6b4b0d3255bfef95601890afd80709"},
		SHA256:  []string{"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		CVEs:    []string{"CVE-2021-44228", "CVE-2024-3094"},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("got\n%s\nwant\n%s", g, w)
	}
	if got.Count() != 17 {
		t.Errorf("Count %d, want 17", got.Count())
	}
}

func TestExtractLimit(t *testing.T) {
	got := Extract("1.1.1.1 2.2.2.2 3.3.3.3 CVE-2020-0001", 2)
	if !reflect.DeepEqual(got.IPv4, []string{"1.1.1.1", "2.2.2.2"}) || !got.Truncated || len(got.CVEs) != 1 {
		t.Fatalf("limit 2: %+v", got)
	}
	if e := Extract("", 5); e.Count() != 0 || e.IPv4 == nil || e.Truncated {
		t.Fatalf("empty text: %+v", e)
	}
}

// FuzzExtract: any input extracts without panicking, deterministically,
// and every indicator is valid UTF-8 found again when its text is
// extracted alone.
func FuzzExtract(f *testing.F) {
	f.Add("10.0.0.1 evil.example.com http://x.example/a CVE-2020-1234")
	f.Add("hxxp://a[.]b[.]cc fe80::1 ::ffff:1.2.3.4 a@b.cd")
	f.Add("http://\xff")
	f.Add(strings.Repeat("a", 64) + " " + strings.Repeat("1.", 10))
	f.Fuzz(func(t *testing.T, text string) {
		a, b := Extract(text, 50), Extract(text, 50)
		if !reflect.DeepEqual(a, b) {
			t.Fatal("not deterministic")
		}
		for _, l := range [][]string{a.IPv4, a.IPv6, a.Domains, a.URLs, a.Emails, a.MD5, a.SHA1, a.SHA256, a.CVEs} {
			for i, v := range l {
				if !utf8.ValidString(v) || v == "" || (i > 0 && l[i-1] >= v) {
					t.Fatalf("bad or unsorted indicator %q in %q", v, l)
				}
			}
		}
	})
}
