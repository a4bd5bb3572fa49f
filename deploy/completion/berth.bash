# bash completion for berth and the per-service debug CLIs (berth-content,
# berth-snapshot, berth-image, berth-task).
#
# Nothing here lists a command or an option: the binary being completed is
# asked, through its own --help output, at every level
# (`berth --help`, `berth images --help`, `berth images ls --help`), so new
# commands and options complete as soon as they exist.

# Reads --help output on stdin into _berth_cmds (the "Commands:" section),
# _berth_opts (every option) and _berth_args (option -> its argument's name,
# for options that take one).
_berth_parse_help()
{
	local line tok in_cmds=0 arg
	local -a toks names
	_berth_cmds=()
	_berth_opts=()
	_berth_args=()
	while IFS= read -r line; do
		case $line in
		Commands:) in_cmds=1; continue ;;
		'') in_cmds=0; continue ;;
		esac
		if ((in_cmds)); then
			[[ $line =~ ^\ +([a-z][a-z0-9_-]*) ]] && _berth_cmds+=("${BASH_REMATCH[1]}")
		elif [[ $line =~ ^\ +-[a-zA-Z-] ]]; then
			read -ra toks <<<"$line"
			names=()
			arg=
			for tok in "${toks[@]}"; do
				tok=${tok%,}
				if [[ $tok == -* ]]; then
					names+=("$tok")
				else
					[[ $tok =~ ^[A-Z] ]] && arg=$tok
					break
				fi
			done
			_berth_opts+=("${names[@]}")
			if [[ -n $arg ]]; then
				for tok in "${names[@]}"; do
					_berth_args+=("$tok=$arg")
				done
			fi
		fi
	done
	[[ " ${_berth_opts[*]} " == *" --help "* ]] || _berth_opts+=(--help)
}

# The argument name of option $1 at the current level, or failure.
_berth_optarg()
{
	local e
	for e in "${_berth_args[@]}"; do
		if [[ ${e%%=*} == "$1" ]]; then
			printf '%s\n' "${e#*=}"
			return 0
		fi
	done
	return 1
}

_berth()
{
	local cur=${COMP_WORDS[COMP_CWORD]}
	local -a path=("${COMP_WORDS[0]}") _berth_cmds _berth_opts _berth_args
	local i w help skip=0 leaf=0 opt='' arg pre=''

	_berth_parse_help < <("${path[@]}" --help 2>/dev/null)
	# Walk the words before the cursor: options (and their values) are
	# skipped, each word naming a command at this level descends into it.
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if ((skip)); then
			((skip--))
			continue
		fi
		if [[ $w == -* ]]; then
			if [[ $w != *=* ]] && _berth_optarg "$w" >/dev/null; then
				# bash splits --opt=value into "--opt" "=" "value"
				if [[ ${COMP_WORDS[i + 1]} == "=" ]]; then skip=2; else skip=1; fi
			fi
			continue
		fi
		((leaf)) && continue
		# Aliases (berth i ls) are not in the help: any word the binary
		# answers `WORD --help` for is a command.
		if ((${#_berth_cmds[@]})) && help=$("${path[@]}" "$w" --help 2>/dev/null); then
			path+=("$w")
			_berth_parse_help <<<"$help"
		else
			leaf=1
		fi
	done

	COMPREPLY=()
	# the value of an option: the word after it, or after "--opt="
	if ((COMP_CWORD >= 2)) && [[ ${COMP_WORDS[COMP_CWORD - 1]} == "=" ]]; then
		opt=${COMP_WORDS[COMP_CWORD - 2]}
	elif ((COMP_CWORD >= 1)) && [[ $cur != -* ]] && ((skip)); then
		opt=${COMP_WORDS[COMP_CWORD - 1]}
	fi
	if [[ $cur == --*=* ]]; then
		# a word bash did not split at "=": complete its value, keep the prefix
		opt=${cur%%=*}
		pre=${cur%%=*}=
		cur=${cur#*=}
	fi
	if [[ -n $opt ]] && arg=$(_berth_optarg "$opt"); then
		case $arg in
		FORMAT) mapfile -t COMPREPLY < <(compgen -W "table json" -- "$cur") ;;
		DIR) mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
		FILE | PATH | IN | OUT | PREFIX) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
		SIG) mapfile -t COMPREPLY < <(compgen -W "TERM KILL INT HUP QUIT USR1 USR2 STOP CONT" -- "$cur") ;;
		esac
		[[ -n $pre ]] && COMPREPLY=("${COMPREPLY[@]/#/$pre}")
		return 0
	fi
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "${_berth_opts[*]}" -- "$cur")
	elif ((!leaf && ${#_berth_cmds[@]})); then
		mapfile -t COMPREPLY < <(compgen -W "${_berth_cmds[*]}" -- "$cur")
	else
		# positional arguments: let bash offer file names
		compopt -o default 2>/dev/null
	fi
	return 0
}

complete -F _berth berth berth-content berth-snapshot berth-image berth-task
