# bash completion for conch and conchd.
# Commands and flags come from the tools' own --help; office, semaphore and job
# names from `conch status --names` against the etcd and prefix on the command
# line (or CONCH_ENDPOINTS / CONCH_PREFIX), quietly: no etcd, no names.

# The flags a --help text lists.
_conch_flags() {
  "$@" --help 2>/dev/null | sed -n 's/^  \(-[a-z],\)\{0,1\}\(--[a-z][a-z-]*\).*/\2/p'
}

# Names of one kind (elect, sema, cron) under the prefix.
_conch_names() {
  local kind=$1 i args=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      --endpoints | --prefix | --cacert | --cert | --key | --user)
        args+=("${COMP_WORDS[i]}" "${COMP_WORDS[i + 1]}") ;;
      --endpoints=* | --prefix=* | --cacert=* | --cert=* | --key=* | --user=*)
        args+=("${COMP_WORDS[i]}") ;;
    esac
  done
  timeout 3 "${COMP_WORDS[0]}" status --names "${args[@]}" 2>/dev/null | sed -n "s/^$kind //p"
}

_conch() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  local i sub="" subsub="" positionals=0
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    local w=${COMP_WORDS[i]}
    if [[ $w == -- ]]; then  # the command to run: complete it like the shell does
      if ((i == COMP_CWORD - 1)); then
        mapfile -t COMPREPLY < <(compgen -c -- "$cur")
      else
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      fi
      return
    fi
    case $w in
      --endpoints | --prefix | --ttl | --kill-after | --cacert | --cert | --key | --user | --timeout | \
        --stable-after | --lock-delay | --metrics | --max | --schedule | --tz | --last)
        ((i++)); continue ;;
      -*) continue ;;
    esac
    if [[ -z $sub ]]; then sub=$w
    elif [[ $sub == cron && -z $subsub ]]; then subsub=$w
    else ((positionals++))
    fi
  done
  case $prev in
    --cacert | --cert | --key) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
    --lock-delay) mapfile -t COMPREPLY < <(compgen -W "auto 0" -- "$cur"); return ;;
    --endpoints | --prefix | --ttl | --kill-after | --user | --timeout | --stable-after | --metrics | \
      --max | --schedule | --tz | --last) return ;;
  esac
  local bin=${COMP_WORDS[0]}
  if [[ -z $sub ]]; then
    if [[ $cur == -* ]]; then
      mapfile -t COMPREPLY < <(compgen -W "$(_conch_flags "$bin")" -- "$cur")
    else
      mapfile -t COMPREPLY < <(compgen -W "$("$bin" --help 2>/dev/null | sed -n '/^commands:/,/^$/s/^  \([a-z]\+\) .*/\1/p')" -- "$cur")
    fi
    return
  fi
  if [[ $sub == cron && -z $subsub ]]; then
    if [[ $cur == -* ]]; then
      mapfile -t COMPREPLY < <(compgen -W "$(_conch_flags "$bin" cron)" -- "$cur")
    else
      mapfile -t COMPREPLY < <(compgen -W "add ls rm pause resume run" -- "$cur")
    fi
    return
  fi
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_conch_flags "$bin" $sub $subsub)" -- "$cur")
    return
  fi
  if ((positionals == 0)); then
    case $sub/$subsub in
      elect/) mapfile -t COMPREPLY < <(compgen -W "$(_conch_names elect)" -- "$cur") ;;
      sema/) mapfile -t COMPREPLY < <(compgen -W "$(_conch_names sema)" -- "$cur") ;;
      cron/rm | cron/add | cron/pause | cron/resume | cron/run) mapfile -t COMPREPLY < <(compgen -W "$(_conch_names cron)" -- "$cur") ;;
    esac
  fi
}

_conchd() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  COMPREPLY=()
  case $prev in
    --cacert | --cert | --key) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
  esac
  [[ $cur == -* ]] && mapfile -t COMPREPLY < <(compgen -W "$(_conch_flags "${COMP_WORDS[0]}")" -- "$cur")
}

complete -F _conch conch
complete -F _conchd conchd
