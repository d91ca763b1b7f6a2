// Package constrain restricts generation to a grammar: it compiles JSON
// Schemas (and compositions of grammars, such as tool-call envelopes) to a
// context-free grammar over bytes, and for every step gives the set of token
// ids that keep the output inside the grammar, as a bitmask the engine
// applies to the logits before sampling (issue 11: structured outputs and
// tool calling).
//
// # Grammars
//
// A Grammar is a tree of sequences, alternatives, repetitions and named
// rules (for recursive $refs) whose leaves are terminals, each a
// deterministic finite automaton over bytes (DFA). Terminals are the
// regular pieces of JSON: a string with its length bounds, pattern and
// format; a number or an integer range; a literal such as `{"name":` or
// `, `. Everything regular is decided by a terminal's automaton, including
// UTF-8 validity of string contents (the automata are built from the UTF-8
// encodings of rune ranges, so a token may end in the middle of a
// character and the next must complete it), and the context-free part (the
// nesting of objects and arrays, recursion) by a stack.
//
// Grammars compose: Literal, Seq, Alt, Repeat, Optional, JSONValue,
// JSONObject and CompileSchema, for example a Hermes/Qwen tool call whose
// arguments follow the tool's parameters schema:
//
//	args, _ := constrain.CompileSchema(parameters)
//	call := constrain.Seq(constrain.Literal("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "), args,
//		constrain.Literal("}\n</tool_call>"))
//	g := constrain.Alt(call, other...)
//
// A grammar is lowered once, on first use, to a program: its rules as runs
// of elements (terminal, rule reference, end). Lowering refuses left
// recursion (a rule that reaches itself without reading a byte, such as a
// schema that is only {"$ref": "#"}, or Repeat of a grammar that matches
// the empty string), which the matcher could not expand, and removes
// alternatives that derive no string (refusing a grammar that has none), so
// every state the matcher reaches can still be completed.
//
// # Matching
//
// A Matcher holds the parse state: a set of heads, each a terminal, a state
// of its automaton and a persistent stack of return positions (a tail call
// does not push, so right recursion such as a repetition runs in constant
// stack). Advance feeds a token's bytes to every head; where a terminal's
// automaton accepts, the head may also finish the terminal and go on into
// whatever the grammar allows next. A token no head can read is an error
// wrapping ErrRejected and leaves the state unchanged. CanEnd reports
// whether the grammar accepts the bytes so far; EOS ids are allowed only
// then. Done reports that nothing but EOS may follow (the engine can stop
// without drawing). Special tokens are never allowed. Clone copies the
// state cheaply (the stacks are shared and immutable). FillMask, Advance,
// CanEnd and Done are the engine's constraint hook.
//
// This is a pushdown automaton over a set of stacks rather than an Earley
// parser: schema grammars are nearly deterministic once the regular parts
// are automata (a JSON string is one terminal, not a rule per character),
// so the set holds one head almost always, a few where optional properties
// or alternatives share a prefix (capped at 4096), and Advance costs a few
// automaton steps per byte. An Earley chart would pay per byte for every
// item of every rule in play.
//
// # Lazy grammars
//
// Lazy is a grammar that applies from a trigger on (tool_choice "auto":
// prose until the model opens `<tool_call>`). Before the trigger every
// token and EOS are allowed, except a token that completes the trigger and
// goes on with bytes the grammar cannot read; a KMP automaton over the
// trigger's bytes tracks how much of it the text ends with. Which tokens
// complete the trigger from each automaton state is computed once per Vocab
// and trigger (≈ 13 ms for Qwen's vocabulary), so a free step costs the
// copy of the vocabulary's bitset (well under a microsecond).
//
// # Masks
//
// Vocab holds the tokenizer's token bytes in a byte trie (preorder arrays:
// a subtree is a contiguous range, so a walk skips a dead subtree with one
// jump). FillMask never walks the whole vocabulary per step. For each
// terminal automaton state it uses an analysis, computed once per Vocab on
// first use and shared by every grammar and request using that automaton
// (automata are identified by a hash of their transition table, so all
// unconstrained strings share one): the tokens whose bytes the terminal
// reads entirely (allowed whatever follows, since every automaton state can
// still reach acceptance and every rule derives a string), and the trie
// nodes where the terminal accepts while the token goes on. Only below
// those nodes does FillMask walk the trie, with what the grammar allows
// after the terminal; that is about 90 small subtrees inside a JSON string
// (tokens that close it and go on, such as `",`) and a handful elsewhere.
// The analysis of one state is one trie walk with the automaton (≈ 2 ms
// for Qwen's 151k tokens); a step then costs the copy of a 19 KB bitset
// plus the walks under the exits, a few microseconds
// (docs/performance.md). The analyses a Vocab holds are bounded (256 MiB):
// past that it starts afresh, and matchers keep the ones they use.
//
// Automata are built by subset construction from regular expressions over
// bytes, trimmed and minimized (within a work budget); a string's length bounds are
// a counted automaton (one copy of the one-character automaton per count),
// so maxLength 1000 is ≈ 12k states built in milliseconds; patterns and
// formats are intersected with it (product construction). Each character
// class of a pattern is first its own automaton, embedded so that subsets
// stay as small as its states: ^.{1000}$ compiles in ≈ 60 ms,
// ^\p{L}{1,30}$ in ≈ 240 ms. Minimization and subset construction have
// work budgets; a pattern past them is refused (errTooBig → SchemaError).
//
// # JSON Schema subset
//
// CompileSchema accepts these keywords; any other keyword is an error
// (*SchemaError with the JSON pointer and keyword, wrapping ErrSchema), as
// is a schema no value satisfies (minItems > maxItems, an empty enum, an
// empty integer range, a required property that is not allowed, a
// recursion with no base case):
//
//   - type (a name or an array of names; "null"), and OpenAPI's nullable;
//     without type, the types whose keywords appear, else any JSON value;
//   - properties (emitted in schema order), required (required properties
//     always, optional ones optionally), additionalProperties (false,
//     true or a schema; additional keys are strings other than the
//     declared names, after the declared properties). Without
//     additionalProperties no other property is generated (like OpenAI's
//     strict mode): the output is still valid, since omitting is allowed;
//   - items (absent: any JSON value), prefixItems, minItems, maxItems (at
//     most 1000; bounded counts are unrolled);
//   - enum and const (values emitted as compact JSON; other keywords beside
//     them only filter the values by type);
//   - anyOf, and oneOf read as anyOf (a value matching several branches is
//     not excluded, so keep oneOf branches disjoint); keywords beside them
//     apply to every branch;
//   - allOf, merged into one schema: properties merged (a property in
//     several branches gets an allOf of its schemas), required joined,
//     types intersected, the tighter bound kept, other keywords must be
//     equal; $ref beside other keywords is an allOf;
//   - $ref to "#" or a JSON pointer inside the document ($defs,
//     definitions, or anywhere), recursion included;
//   - minLength, maxLength (code points, at most 1000), pattern and format,
//     intersected as automata;
//   - pattern (up to 4096 bytes): literals, classes (\d \w \s, [...],
//     [^...], \p{...}), ., ?, *, +, {m,n} (m, n ≤ 1000), groups,
//     alternation, and ^ $ only at the start and end of the pattern or of
//     a top-level alternative.
//     Unanchored patterns match anywhere, as JSON Schema says. . matches
//     any character but \n, \r, U+2028, U+2029. No case-insensitive flag,
//     backreferences, lookaround or word boundaries. The pattern applies
//     to the decoded string; characters are written as themselves, '"' and
//     '\' escaped and control characters as \n-style or \u00XX escapes;
//   - format: date-time, date, time, uuid, email, ipv4, ipv6, each a
//     regular subset that is always valid (see formatRx: February up to
//     the 28th, no leap seconds, the full IPv6 form, a plain dot-atom
//     email); any other format is an error;
//   - minimum, maximum, exclusiveMinimum, exclusiveMaximum (|bound| ≤
//     2^53). Integers: exactly the integers in range, as a digit-range
//     automaton (no leading zeros, no -0). Numbers: without bounds any JSON
//     number (exponent: e, at most three digits); with bounds, no exponent,
//     the integers in range exactly, and a fraction I.F (F with a non-zero
//     digit) only when the whole interval (I, I+1) is inside the bounds, so
//     with a non-integer bound some valid numbers cannot be produced but
//     every number produced is valid;
//   - annotations, ignored: title, description, default, examples,
//     $schema, $id, $comment, deprecated, readOnly, writeOnly.
//
// Strings never use \u escapes except for control characters, and '/' is
// never escaped. As in JSON Schema, the string keywords (pattern, format,
// lengths) do not constrain values of other types: "format": "int64" on an
// integer is ignored.
//
// Whitespace: the output is compact JSON except that one space may follow a
// comma or a colon (json.dumps' default ", " and ": "), so a model may write
// either style, and a model that insists on spaces cannot loop on them.
//
// Size limits keep any input bounded (FuzzCompileSchema): schemas up to
// 1 MiB nested up to 64 deep, automata up to 60k states, programs up to 2^20
// elements.
package constrain
