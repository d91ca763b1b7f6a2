// Package regex is the regular-expression engine of the tokenizer: the
// subset of Oniguruma syntax that tokenizer.json files use for their Split
// pre-tokenizers and Replace normalizers, matched with Perl leftmost-first
// semantics by a backtracking VM over runes:
//
//   - alternation, groups (…), (?:…), (?i:…), (?-i:…), lookahead (?=…) (?!…)
//   - quantifiers ? * + {n} {n,} {n,m} and their lazy forms
//   - literals, ., ^ and $ (line anchors, as in Ruby/Oniguruma), \A \z \Z
//   - classes […] with ranges and negation; \s \S \d \D \w \W \h \H;
//     \p{…} \P{…} \p{^…} with general categories, scripts and binary properties
//   - escapes \t \n \r \f \v \a \e \0 \xHH \x{H…} \uHHHH
//
// As in Oniguruma (and in transformers.js, which rewrites patterns to match
// it), \s is Unicode White_Space, \d is \p{Nd} and \w is
// Alphabetic+M+Nd+Pc. Lookbehind, backreferences, possessive quantifiers and
// atomic groups are rejected with an error wrapping ErrUnsupported.
//
// Go's regexp (RE2) cannot be used instead: tokenizer patterns rely on
// lookahead (the \s+(?!\S) of GPT-2 and Llama-3) and on Oniguruma's
// definitions of \s, \d and \w. The package lives under the tokenizer, its
// only user, because its syntax and semantics are exactly what tokenizer.json
// needs and no more; it is a package of its own so that the engine is
// separate from the tokenizer's components and is tested on its own.
package regex
