# Build-time guard for the per-ISA translation units (run by CMakeLists.txt after xmhash_core is built).
#
# A *_avx2 / *_avx512 object is compiled with wider instruction sets than the rest. A weak (COMDAT) symbol it
# defines -- an inline function or a template instantiation with external linkage, std::vector members included
# -- is merged by the linker with any other object's copy of the same symbol, and the one copy kept may be the
# wide one, which every caller then runs: a CPU without those instructions would fault outside the dispatched
# path. So ISA code lives in anonymous namespaces (scan_simd.hpp, pairwise_generic.hpp) and leaves std
# containers' out-of-line members to baseline files (metrics_scan.hpp: assign_zeros, grow_to); this script
# fails the build when an ISA object defines any weak symbol.
#
# Inputs: NM (the nm program), OBJECTS (the library's object files joined with '|').
string(REPLACE "|" ";" objects "${OBJECTS}")
set(found "")
foreach(obj IN LISTS objects)
  get_filename_component(name "${obj}" NAME)
  if(NOT name MATCHES "_(avx2|avx512)\\.")
    continue()
  endif()
  execute_process(COMMAND "${NM}" --defined-only -P "${obj}" OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check_isa_symbols: '${NM}' failed on ${obj}")
  endif()
  string(REPLACE "\n" ";" lines "${out}")
  foreach(line IN LISTS lines)
    if(line MATCHES "^([^ ]+) [WwVvu] ")
      list(APPEND found "${name}: ${CMAKE_MATCH_1}")
    endif()
  endforeach()
endforeach()
if(found)
  list(JOIN found "\n  " found_text)
  message(FATAL_ERROR "ISA translation units define weak symbols, which the linker may merge with baseline "
                      "callers' copies (see csrc/check_isa_symbols.cmake):\n  ${found_text}")
endif()
