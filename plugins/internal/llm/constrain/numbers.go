package constrain

import (
	"math"
	"strconv"
	"strings"
)

// Integers and numbers as regular expressions. An integer range is exact:
// the digit strings of [lo, hi] with no leading zeros and no "-0".

var (
	rxDigit    = rxBytes('0', '9')
	rxDigit19  = rxBytes('1', '9')
	rxFraction = rxSeqOf(rxLit("."), rxRepOf(rxDigit, 1, -1))
	// a fraction with a non-zero digit: the value is strictly inside (I, I+1)
	rxNonZeroFraction = rxSeqOf(rxLit("."), rxRepOf(rxDigit, 0, -1), rxDigit19, rxRepOf(rxDigit, 0, -1))
	rxExponent        = rxSeqOf(rxBytes('e', 'e'), rxOpt(rxAltOf(rxLit("+"), rxLit("-"))), rxRepOf(rxDigit, 1, 3))
	rxNatural         = rxAltOf(rxLit("0"), rxSeqOf(rxDigit19, rxRepOf(rxDigit, 0, -1)))
)

// bound is an optional integer bound.
type bound struct {
	v   int64
	set bool
}

// intRangeRx is the integers in [lo, hi] (either side may be open); nil when
// the range is empty.
func intRangeRx(lo, hi bound) *rx {
	if lo.set && hi.set && lo.v > hi.v {
		return nil
	}
	var alts []*rx
	// negative part: -n for n in [max(1, -hi), -lo]
	if !lo.set || lo.v < 0 {
		nlo := int64(1)
		if hi.set && hi.v < 0 {
			nlo = -hi.v
		}
		nhi := bound{}
		if lo.set {
			nhi = bound{-lo.v, true}
		}
		if r := natRangeRx(nlo, nhi); r != nil {
			alts = append(alts, rxSeqOf(rxLit("-"), r))
		}
	}
	// non-negative part: [max(0, lo), hi]
	if !hi.set || hi.v >= 0 {
		plo := int64(0)
		if lo.set && lo.v > 0 {
			plo = lo.v
		}
		if r := natRangeRx(plo, hi); r != nil {
			alts = append(alts, r)
		}
	}
	if len(alts) == 0 {
		return nil
	}
	return rxAltOf(alts...)
}

// natRangeRx is the naturals in [lo, hi], lo ≥ 0 (hi open when unset).
func natRangeRx(lo int64, hi bound) *rx {
	if hi.set && lo > hi.v {
		return nil
	}
	ls := strconv.FormatInt(lo, 10)
	var alts []*rx
	if !hi.set {
		// [lo, 10^len(lo) - 1], then every longer number
		alts = append(alts, sameLenRx(ls, strings.Repeat("9", len(ls))))
		alts = append(alts, rxSeqOf(rxDigit19, rxRepOf(rxDigit, len(ls), -1)))
		return rxAltOf(alts...)
	}
	hs := strconv.FormatInt(hi.v, 10)
	for n := len(ls); n <= len(hs); n++ {
		a, b := strings.Repeat("9", n), strings.Repeat("9", n)
		a = "1" + strings.Repeat("0", n-1)
		if n == 1 {
			a = "0"
		}
		if n == len(ls) {
			a = ls
		}
		if n == len(hs) {
			b = hs
		}
		alts = append(alts, sameLenRx(a, b))
	}
	return rxAltOf(alts...)
}

// sameLenRx is the digit strings s with a ≤ s ≤ b, all of one length.
func sameLenRx(a, b string) *rx {
	if a == "" {
		return &rx{op: rxEmpty}
	}
	if a[0] == b[0] {
		return rxSeqOf(rxLit(a[:1]), sameLenRx(a[1:], b[1:]))
	}
	rest := len(a) - 1
	if strings.Trim(a[1:], "0") == "" && strings.Trim(b[1:], "9") == "" {
		return rxSeqOf(rxBytes(a[0], b[0]), rxRepOf(rxDigit, rest, rest))
	}
	alts := []*rx{rxSeqOf(rxLit(a[:1]), sameLenRx(a[1:], strings.Repeat("9", rest)))}
	if a[0]+1 <= b[0]-1 {
		alts = append(alts, rxSeqOf(rxBytes(a[0]+1, b[0]-1), rxRepOf(rxDigit, rest, rest)))
	}
	alts = append(alts, rxSeqOf(rxLit(b[:1]), sameLenRx(strings.Repeat("0", rest), b[1:])))
	return rxAltOf(alts...)
}

// numBounds are a number's bounds as read from the schema.
type numBounds struct {
	min, max         float64
	hasMin, hasMax   bool
	exclMin, exclMax bool
}

// Bounds beyond ±2^53 are not representable exactly; the compiler refuses
// them.
const maxExactBound = 1 << 53

// integerRx: integers within b (a non-integer bound rounds inward).
func integerRx(b numBounds) *rx {
	var lo, hi bound
	if b.hasMin {
		v := math.Ceil(b.min)
		if b.exclMin && v == b.min {
			v++
		}
		lo = bound{int64(v), true}
	}
	if b.hasMax {
		v := math.Floor(b.max)
		if b.exclMax && v == b.max {
			v--
		}
		hi = bound{int64(v), true}
	}
	return intRangeRx(lo, hi)
}

// numberRx: JSON numbers within b. Unbounded: any JSON number whose
// exponent, if any, is a lower-case e and at most three digits. Bounded: no exponent; integers exactly as integerRx;
// with a fraction, the number I.F (F with a non-zero digit, so strictly
// between I and I+1) when all of (I, I+1) is inside the bounds — a subset of
// the numbers in range when a bound is not an integer.
func numberRx(b numBounds) *rx {
	if !b.hasMin && !b.hasMax {
		return rxSeqOf(rxOpt(rxLit("-")), rxNatural, rxOpt(rxFraction), rxOpt(rxExponent))
	}
	var alts []*rx
	if r := integerRx(b); r != nil {
		alts = append(alts, r)
	}
	// non-negative I.F in (I, I+1): I ≥ ceil(min) (≥ 0), I+1 ≤ floor(max)
	lo := bound{0, true}
	if b.hasMin && b.min > 0 {
		lo.v = int64(math.Ceil(b.min))
	}
	hi := bound{}
	if b.hasMax {
		hi = bound{int64(math.Floor(b.max)) - 1, true}
	}
	if r := intRangeRx(lo, hi); r != nil && (!hi.set || hi.v >= 0) {
		alts = append(alts, rxSeqOf(r, rxNonZeroFraction))
	}
	// negative -I.F in (-(I+1), -I): -(I+1) ≥ min, -I ≤ max
	lo = bound{0, true}
	if b.hasMax && b.max < 0 {
		lo.v = int64(math.Ceil(-b.max))
	}
	hi = bound{}
	if b.hasMin {
		hi = bound{int64(math.Floor(-b.min)) - 1, true}
	}
	if r := intRangeRx(lo, hi); r != nil && (!hi.set || hi.v >= 0) {
		alts = append(alts, rxSeqOf(rxLit("-"), r, rxNonZeroFraction))
	}
	if len(alts) == 0 {
		return nil
	}
	return rxAltOf(alts...)
}
