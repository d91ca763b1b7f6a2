package constrain

import "strings"

// formatRx is the string contents (ASCII, nothing to escape) for a
// supported format; ok is false for other formats. Each is a subset of what
// RFC 3339 / RFC 4122 / RFC 5321 / RFC 4291 allow, chosen so that every
// string it produces is valid:
//
//   - date: YYYY-MM-DD with the days of each month (February up to 28);
//   - time: HH:MM:SS, optional .fraction (1–9 digits), then Z or ±HH:MM;
//   - date-time: date "T" time;
//   - uuid: 8-4-4-4-12 hexadecimal digits;
//   - email: a dot-atom local part (≤ 64 characters) @ one to three DNS
//     labels and a letters-only top-level label;
//   - ipv4: dotted decimal without leading zeros;
//   - ipv6: the full form, eight groups of 1–4 hexadecimal digits.
func formatRx(format string) (*rx, bool) {
	d := rxDigit
	two := func(lo, hi int) *rx { // zero-padded two-digit numbers lo..hi
		var alts []*rx
		for t := lo / 10; t <= hi/10; t++ {
			a, b := max(lo, t*10)%10, min(hi, t*10+9)%10
			alts = append(alts, rxSeqOf(rxBytes(byte('0'+t), byte('0'+t)), rxBytes(byte('0'+a), byte('0'+b))))
		}
		return rxAltOf(alts...)
	}
	date := func() *rx {
		month := func(ms []string, days int) *rx {
			var alts []*rx
			for _, m := range ms {
				alts = append(alts, rxLit(m))
			}
			return rxSeqOf(rxAltOf(alts...), rxLit("-"), two(1, days))
		}
		return rxSeqOf(rxRepOf(d, 4, 4), rxLit("-"), rxAltOf(
			month([]string{"01", "03", "05", "07", "08", "10", "12"}, 31),
			month([]string{"04", "06", "09", "11"}, 30),
			month([]string{"02"}, 28)))
	}
	tm := func() *rx {
		offset := rxAltOf(rxLit("Z"), rxSeqOf(rxAltOf(rxLit("+"), rxLit("-")), two(0, 23), rxLit(":"), two(0, 59)))
		return rxSeqOf(two(0, 23), rxLit(":"), two(0, 59), rxLit(":"), two(0, 59),
			rxOpt(rxSeqOf(rxLit("."), rxRepOf(d, 1, 9))), offset)
	}
	var hex byteSet
	hex.addRange('0', '9')
	hex.addRange('a', 'f')
	hex.addRange('A', 'F')
	h := rxByteSet(hex)
	switch format {
	case "date":
		return date(), true
	case "time":
		return tm(), true
	case "date-time":
		return rxSeqOf(date(), rxLit("T"), tm()), true
	case "uuid":
		return rxSeqOf(rxRepOf(h, 8, 8), rxLit("-"), rxRepOf(h, 4, 4), rxLit("-"), rxRepOf(h, 4, 4), rxLit("-"),
			rxRepOf(h, 4, 4), rxLit("-"), rxRepOf(h, 12, 12)), true
	case "email":
		var atext byteSet
		atext.addRange('a', 'z')
		atext.addRange('A', 'Z')
		atext.addRange('0', '9')
		for _, c := range []byte("!#$%&'*+/=?^_`{|}~-") {
			atext.add(c)
		}
		var alnum, alpha byteSet
		alnum.addRange('a', 'z')
		alnum.addRange('A', 'Z')
		alnum.addRange('0', '9')
		alpha.addRange('a', 'z')
		alpha.addRange('A', 'Z')
		ld := rxSeqOf(rxByteSet(alnum), rxOpt(rxSeqOf(rxRepOf(rxAltOf(rxByteSet(alnum), rxLit("-")), 0, 20), rxByteSet(alnum))))
		local := rxSeqOf(rxRepOf(rxByteSet(atext), 1, 32), rxOpt(rxSeqOf(rxLit("."), rxRepOf(rxByteSet(atext), 1, 31))))
		domain := rxSeqOf(rxRepOf(rxSeqOf(ld, rxLit(".")), 1, 3), rxRepOf(rxByteSet(alpha), 2, 12))
		return rxSeqOf(local, rxLit("@"), domain), true
	case "ipv4":
		octet := rxAltOf(rxSeqOf(rxLit("25"), rxBytes('0', '5')), rxSeqOf(rxLit("2"), rxBytes('0', '4'), d),
			rxSeqOf(rxLit("1"), d, d), rxSeqOf(rxBytes('1', '9'), d), d)
		return rxSeqOf(octet, rxRepOf(rxSeqOf(rxLit("."), octet), 3, 3)), true
	case "ipv6":
		group := rxRepOf(h, 1, 4)
		return rxSeqOf(group, rxRepOf(rxSeqOf(rxLit(":"), group), 7, 7)), true
	}
	return nil, false
}

// supportedFormats names them for error messages.
var supportedFormats = strings.Join([]string{"date-time", "date", "time", "uuid", "email", "ipv4", "ipv6"}, ", ")
