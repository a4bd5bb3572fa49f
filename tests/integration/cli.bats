#!/usr/bin/env bats
# The command line itself, with no daemon running: --help everywhere, usage
# errors, bash and zsh completion, the man pages. Commands are enumerated
# from the binaries' own --help, so a new command is covered without a
# change here.

load helpers

setup_file() {
	# nothing here may reach a suite: an address where none listens
	export BERTH_ADDRESS=ipc:///nonexistent/berth-cli-test.sock
	unset BERTH_SERVER_KEY BERTH_KEY BERTH_SNAPSHOTTER
}

# The names in the "Commands:" section of `$@ --help`.
commands_of() {
	"$@" --help | awk '/^Commands:/ { f = 1; next } f && /^$/ { f = 0 } f && /^  [a-z]/ { print $1 }'
}

# Every command path of berth, one a line: "images", "images ls", …
all_paths() {
	local c v subs
	for c in $(commands_of berth); do
		subs=$(commands_of berth "$c")
		if [ -z "$subs" ]; then
			echo "$c"
		else
			for v in $subs; do echo "$c $v"; done
		fi
	done
}

@test "berth --help lists command groups; each answers --help with its Usage and verbs" {
	run berth --help
	assert_success
	assert_line --index 0 --regexp '^Usage: berth '
	local cmds
	cmds=$(commands_of berth)
	[ "$(echo "$cmds" | wc -l)" -ge 10 ]
	for c in $cmds; do
		run berth "$c" --help
		[ "$status" -eq 0 ] || { echo "berth $c --help: exit $status: $output"; false; }
		echo "$output" | grep -q "^Usage: berth $c" || { echo "berth $c --help: no Usage line: $output"; false; }
	done
}

@test "every command and subcommand answers --help with exit 0 and a Usage line naming it" {
	local p out rc n=0 f=0
	while read -r p; do
		rc=0
		out=$(berth $p --help 2>&1) || rc=$?
		[ "$rc" -eq 0 ] || { echo "berth $p --help: exit $rc: $out"; false; }
		grep -q "^Usage: berth $p" <<<"$out" || { echo "berth $p --help: no 'Usage: berth $p': $out"; false; }
		n=$((n + 1))
		# a command offering --format refuses a format it does not know, before doing anything
		if grep -q -- "--format FORMAT" <<<"$out"; then
			rc=0
			out=$(berth $p --format yaml x 2>&1) || rc=$?
			[ "$rc" -eq 2 ] || { echo "berth $p --format yaml: exit $rc: $out"; false; }
			grep -qF 'invalid value for --format: "yaml"' <<<"$out" || { echo "berth $p --format yaml: $out"; false; }
			f=$((f + 1))
		fi
	done < <(all_paths)
	[ "$n" -ge 40 ]
	[ "$f" -ge 10 ]
	# -h too, and an alias reaches the same verb
	run berth images ls -h
	assert_success
	assert_line --index 0 --partial "Usage: berth images ls"
	run berth i ls --help
	assert_success
	assert_line --index 0 --partial "Usage: berth images ls"
}

@test "an unknown option of any command exits 2 naming the option and the help to read" {
	local p out rc
	while read -r p; do
		rc=0
		out=$(berth $p --no-such-option 2>&1) || rc=$?
		[ "$rc" -eq 2 ] || { echo "berth $p --no-such-option: exit $rc: $out"; false; }
		grep -qF -- "--no-such-option" <<<"$out" || { echo "berth $p: error does not name the option: $out"; false; }
		grep -qF -- "See 'berth $p --help'" <<<"$out" || { echo "berth $p: error does not point at --help: $out"; false; }
	done < <(all_paths)
}

@test "an unknown command, verb or global option exits 2 naming it" {
	run berth no-such-command
	assert_equal "$status" 2
	assert_output --partial 'unknown command "no-such-command"'
	assert_output --partial "berth --help"
	run berth images no-such-verb
	assert_equal "$status" 2
	assert_output --partial 'unknown command "no-such-verb"'
	assert_output --partial "berth images --help"
	run berth --no-such-global images ls
	assert_equal "$status" 2
	assert_output --partial -- "--no-such-global"
	run berth images ls --format yaml
	assert_equal "$status" 2
	assert_output --partial 'invalid value for --format: "yaml"'
	# no command at all: the usage, on stderr, and 2
	run berth
	assert_equal "$status" 2
	assert_output --partial "Usage: berth"
}

@test "the daemons, debug CLIs and berth-dev answer --help with exit 0" {
	local b v p
	for b in berth-contentd berth-snapshotd berth-imaged berth-taskd berth-gatewayd berth-shim \
		berth-content berth-snapshot berth-image berth-task berth-dev berth-shim-ctl; do
		run "$b" --help
		[ "$status" -eq 0 ] || { echo "$b --help: exit $status: $output"; false; }
		echo "$output" | grep -qi "usage\|$b" || { echo "$b --help: $output"; false; }
	done
	# a debug CLI's verbs are named as they are typed with it (berth-content ls,
	# berth-task tasks ls), in their help and in their usage errors
	for b in berth-content berth-image berth-snapshot berth-task; do
		v=$(commands_of "$b" | head -1)
		p=$(commands_of "$b" "$v" | head -1)
		run "$b" $v $p --help
		assert_success
		assert_line --index 0 --regexp "^Usage: $b $v${p:+ $p}( |\$)"
		run "$b" $v $p --no-such-option
		assert_equal "$status" 2
		assert_output --partial "See '$b $v${p:+ $p} --help'"
	done
	run berth-contentd --no-such-option
	assert_failure
	assert_output --partial "unknown option"
}

# Runs the bash completion for the words given (the last one being
# completed) and prints COMPREPLY one a line.
complete_bash() {
	bash -c '
		source "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
		_berth
		printf "%s\n" "${COMPREPLY[@]}"
	' complete_bash "$REPO/deploy/completion/berth.bash" "$@"
}

@test "bash completion: commands, verbs, aliases, options and their values, from the binary" {
	run complete_bash berth ima
	assert_success
	assert_output images
	run complete_bash berth images p
	assert_line pull
	assert_line push
	for l in "${lines[@]}"; do [[ $l == p* ]]; done
	run complete_bash berth images ls --f
	assert_output --format
	run complete_bash berth i ls --f
	assert_output --format
	run complete_bash berth -n team-a --timeout 5s images un
	assert_output unpack
	run complete_bash berth --ti
	assert_output --timeout
	run complete_bash berth images ls --format ''
	assert_line table
	assert_line json
	run complete_bash berth images ls --format = j
	assert_output json
	run complete_bash berth snapshots -s native ls --q
	assert_output --quiet
	run complete_bash berth tasks kill -s KI
	assert_output KILL
	run complete_bash berth-content -a ipc:///x a
	assert_line active
	assert_line abort
	# every verb berth lists is offered at its level
	local c
	for c in $(commands_of berth); do
		run complete_bash berth "$c"
		assert_output "$c"
	done
	# nothing made up
	run complete_bash berth no-such-command ''
	assert_output ''
	run complete_bash berth images ls --no-such
	assert_output ''
}

@test "zsh completion parses and offers the binary's commands and options" {
	command -v zsh >/dev/null || skip "zsh is not installed"
	run zsh -n "$REPO/deploy/completion/_berth"
	assert_success
	# compsys's builtins replaced by stubs that print what would be offered
	local stubs='
		compadd() { [[ $1 == -- ]] && shift; print -r -- "$@"; }
		_describe() { local -a a; a=(${(P)4}); print -r -- ${a%%:*}; }
		_call_program() { shift; "$@"; }
		_files() { print FILES; }
		_directories() { print DIRS; }
		_message() { print MESSAGE; }
		compset() { cur=${cur#*=}; }
		source "$1" >/dev/null 2>&1
		shift
		words=("$@"); CURRENT=$#words
		_berth'
	run zsh -f -c "$stubs" zsh "$REPO/deploy/completion/_berth" berth ima
	assert_success
	assert_output --partial images
	assert_output --partial namespaces
	run zsh -f -c "$stubs" zsh "$REPO/deploy/completion/_berth" berth i ls --f
	assert_output --partial --format
	assert_output --partial --quiet
	run zsh -f -c "$stubs" zsh "$REPO/deploy/completion/_berth" berth images ls --format ''
	assert_output "table json"
	run zsh -f -c "$stubs" zsh "$REPO/deploy/completion/_berth" berth -n x snapshots ''
	assert_output --partial prepare
}

@test "the man pages render without warnings, one per binary" {
	local f b
	for f in "$REPO"/docs/man/*.[18]; do
		run groff -man -Tutf8 -ww -z "$f"
		[ -z "$output" ] || { echo "groff on $f: $output"; false; }
		# NAME names the file's program, and .TH its section
		b=$(basename "$f")
		grep -A1 '^\.SH NAME' "$f" | grep -qx "${b%.*} \\\\- .*" || { echo "$f: NAME is not ${b%.*}"; false; }
		grep -qE "^\.TH ${b%.*} ${b##*.} " <(sed -n 's/^\.TH \([^ ]*\)/.TH \L\1/p' "$f") ||
			{ echo "$f: .TH does not name ${b%.*}(${b##*.})"; false; }
	done
	for b in "$BIN"/berth*; do
		b=$(basename "$b")
		ls "$REPO/docs/man/$b".[18] >/dev/null 2>&1 || { echo "no man page for $b"; false; }
	done
}

@test "berth(1) documents every command and verb berth lists" {
	local text p
	text=$(MANWIDTH=250 man --nh --nj -l "$REPO/docs/man/berth.1" 2>/dev/null | col -bx)
	while read -r p; do
		grep -qF "berth $p" <<<"$text" || { echo "berth(1) does not document 'berth $p'"; false; }
	done < <(all_paths)
	for p in BERTH_ADDRESS BERTH_NAMESPACE BERTH_SERVER_KEY BERTH_KEY "EXIT STATUS" EXAMPLES; do
		grep -qF "$p" <<<"$text" || { echo "berth(1) lacks $p"; false; }
	done
}
