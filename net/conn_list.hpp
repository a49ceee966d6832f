// An intrusive doubly linked list of connections, shared by every TCP code path: the engine
// keeps its connections ordered by activity (the head is the least recently active: the idle
// sweep walks from it, the connection cap evicts it), its closing connections ordered by
// deadline, and those holding input ordered by when they began to. T needs the two link
// members named by Prev and Next (by default `prev` and `next`); a T is in at most one list
// per pair of links.
#pragma once

#include <cstddef>

namespace dp::net {

template <typename T, T* T::*Prev = &T::prev, T* T::*Next = &T::next>
struct ConnList {
    T* head = nullptr;
    T* tail = nullptr;
    size_t size = 0;

    void push_back(T* c) {
        c->*Prev = tail;
        c->*Next = nullptr;
        if (tail) tail->*Next = c;
        else head = c;
        tail = c;
        ++size;
    }

    void remove(T* c) {
        if (c->*Prev) (c->*Prev)->*Next = c->*Next;
        else head = c->*Next;
        if (c->*Next) (c->*Next)->*Prev = c->*Prev;
        else tail = c->*Prev;
        c->*Prev = c->*Next = nullptr;
        --size;
    }
};

}  // namespace dp::net
